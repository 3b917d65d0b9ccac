//! The projection seam: every weight matrix of the decoder's attention and MLP is a [`Proj`],
//! dense (`x·W`, burn's `Linear` without bias) or quantized ([`QuantLinear`]: packed codes and
//! scales, a fused kernel for decode rows). A quantized model is the same decoder with other
//! projections, in the spirit of candle's `enum Proj` and mistral.rs's per-layer `QuantMethod`.

use burn::module::{Module, Param};
use burn::nn::LinearConfig;
use burn::tensor::{backend::Backend, Tensor};

use crate::kernels::AttentionBackend;
use crate::quant::{Fp8Training, QuantFormat, QuantLinear};

/// What a [`Proj`] holds.
enum Kind<'a, B: Backend> {
    Dense(&'a Param<Tensor<B, 2>>),
    Quant(&'a QuantLinear),
}

/// A bias-free projection `y = x·W`, dense or quantized.
///
/// Exactly one of the two fields is set (the constructors guarantee it). The dense weight keeps
/// burn `Linear`'s layout and parameter name, so checkpoints read `….weight` as before.
#[derive(Module, Debug)]
pub struct Proj<B: Backend> {
    /// Dense weight `[d_in, d_out]`; `None` once quantized.
    weight: Option<Param<Tensor<B, 2>>>,
    /// Packed codes replacing `weight` (plain data: never trained or saved by burn).
    quant: Option<QuantLinear>,
    /// Simulated FP8 training of the dense product (plain data: a setting, never saved).
    fp8: Option<Fp8Training>,
}

impl<B: Backend> Proj<B> {
    /// A dense projection with burn's default `Linear` initialization, drawn now: burn draws
    /// `Linear` weights lazily, on first use, so a clone taken before that would draw its own.
    pub fn init(d_in: usize, d_out: usize, device: &B::Device) -> Self {
        let l = LinearConfig::new(d_in, d_out)
            .with_bias(false)
            .init::<B>(device);
        Self::dense(Param::from_tensor(l.weight.val()))
    }

    /// A dense projection holding `weight` (`[d_in, d_out]`).
    pub fn dense(weight: Param<Tensor<B, 2>>) -> Self {
        Self {
            weight: Some(weight),
            quant: None,
            fp8: None,
        }
    }

    /// A quantized projection.
    pub fn quantized(q: QuantLinear) -> Self {
        Self {
            weight: None,
            quant: Some(q),
            fp8: None,
        }
    }

    fn kind(&self) -> Kind<'_, B> {
        match (&self.weight, &self.quant) {
            (_, Some(q)) => Kind::Quant(q),
            (Some(w), None) => Kind::Dense(w),
            (None, None) => unreachable!("the constructors set dense or quantized weights"),
        }
    }

    /// Input and output widths.
    pub fn dims(&self) -> (usize, usize) {
        match self.kind() {
            Kind::Dense(w) => {
                let [i, o] = w.val().dims();
                (i, o)
            }
            Kind::Quant(q) => q.dims(),
        }
    }

    /// Sets the activations of a quantized projection (a dense one has none to set).
    pub fn set_activations(&mut self, activations: crate::quant::Activations) {
        if let Some(q) = &mut self.quant {
            q.activations = activations;
        }
    }

    /// Rounds the dense product's inputs to FP8 ([`Fp8Training`]) from now on (`None`: FP32).
    pub fn set_fp8_training(&mut self, fp8: Option<Fp8Training>) {
        self.fp8 = fp8;
    }

    /// The FP8 training setting.
    pub fn fp8_training(&self) -> Option<Fp8Training> {
        self.fp8
    }

    /// The quantized layer, when this projection holds one.
    pub fn quant(&self) -> Option<&QuantLinear> {
        self.quant.as_ref()
    }

    /// Bytes of the weights as stored (f32 for dense; codes, scales and zero points otherwise).
    pub fn bytes(&self) -> usize {
        match &self.quant {
            Some(q) => q.weight.bytes(),
            None => {
                let (i, o) = self.dims();
                i * o * 4
            }
        }
    }
}

impl<B: AttentionBackend> Proj<B> {
    /// `y = x·W`. With [`Fp8Training`] set on a dense projection, `x` (1×128 tiles along
    /// `d_in`) and `W` (128×128 blocks) are rounded to FP8 E4M3 with straight-through gradients,
    /// and `dY` to the gradient format in backward where one is set
    /// ([`crate::quant::fp8_train`]).
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → `[..., d_out]`; leading dimensions are flattened into the rows of
    ///   one matrix product, so a batch of decode rows reads each weight once.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.kind() {
            Kind::Quant(q) => q.forward(x),
            Kind::Dense(w) => {
                let mut dims = x.dims();
                let [d_in, d_out] = w.val().dims();
                let rows = dims[..D - 1].iter().product::<usize>();
                let x = x.reshape([rows, d_in]);
                let w = w.val();
                let y = match self.fp8 {
                    Some(f) => {
                        let x = B::fp8_straight_through(x, Some(f.activation_tiles()), None);
                        let w = B::fp8_straight_through(w, Some(f.weight_tiles()), None);
                        B::fp8_straight_through(x.matmul(w), None, f.grad_tiles())
                    }
                    None => B::few_rows_matmul(&x, &w).unwrap_or_else(|| x.matmul(w)),
                };
                dims[D - 1] = d_out;
                y.reshape(dims)
            }
        }
    }

    /// Several projections of one input, as one product where all are quantized
    /// ([`QuantLinear::forward_group`]); each projection's [`Self::forward`] otherwise.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → each `[..., d_out of that projection]`
    pub fn forward_group<const D: usize, const N: usize>(
        projs: [&Proj<B>; N],
        x: Tensor<B, D>,
    ) -> [Tensor<B, D>; N] {
        if projs.iter().all(|p| p.quant.is_some()) {
            QuantLinear::forward_group(projs.map(|p| p.quant.as_ref().expect("quantized")), x)
        } else {
            projs.map(|p| p.forward(x.clone()))
        }
    }

    /// The weight as a dense `[d_in, d_out]` tensor (dequantized when quantized).
    pub fn weight(&self, device: &B::Device) -> Tensor<B, 2> {
        match self.kind() {
            Kind::Dense(w) => w.val(),
            Kind::Quant(q) => q.dequantized(device),
        }
    }

    /// This projection's weights in `format`.
    pub fn quantize(&self, format: QuantFormat, device: &B::Device) -> crate::Result<Self> {
        Ok(Self::quantized(QuantLinear::from_weight(
            self.weight(device),
            format,
        )?))
    }

    /// A dense projection with the dequantized weights (the reference of the quantized path).
    pub fn dequantize(&self, device: &B::Device) -> Self {
        Self::dense(Param::from_tensor(self.weight(device)))
    }
}
