//! `QuantLinear`: a bias-free linear layer that holds packed codes and scales only.
//!
//! `forward_reference` dequantizes and multiplies (the definition). `forward` takes the fused
//! host kernel ([`super::matvec`]) for up to [`STEP_ROWS`] rows (in passes of eight, so that a
//! row's result does not depend on the rows beside it) on backends whose tensors live in host
//! memory (flex), and the reference path otherwise: prefill-sized matrix products, and CUDA,
//! where burn 0.21 offers no quantized matmul for these formats.
//!
//! The layer holds no tensor and no device: it runs on the backend and device of its input, so
//! that it can sit inside a burn module ([`crate::proj::Proj`]) as plain data.

use burn::tensor::{Tensor, TensorData};

use super::act::{default_activations, Activations};
use super::format::QuantFormat;
use super::int_dot::{self, IntPath};
use super::matvec::{matvec, MAX_ROWS};
use super::tensor::QuantizedTensor;
use crate::kernels::few_rows::STEP_ROWS;
use crate::kernels::{isa, AttentionBackend};

/// A quantized bias-free linear layer `y = x · Wᵀ` with `W` stored `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLinear {
    /// Codes and scales, `[d_out, d_in]`.
    pub weight: QuantizedTensor,
    /// What the fused decode path multiplies the codes with (int8 only where the format has an
    /// integer kernel; see [`QuantLinear::int8_active`]).
    pub activations: Activations,
}

impl QuantLinear {
    /// Quantizes a weight stored burn-style, `[d_in, d_out]`.
    pub fn from_weight<B: AttentionBackend>(
        w: Tensor<B, 2>,
        format: QuantFormat,
    ) -> crate::Result<Self> {
        let [d_in, d_out] = w.dims();
        let t = w.transpose().into_data().convert::<f32>();
        let values = t.as_slice::<f32>().expect("f32 weights");
        Ok(Self::new(QuantizedTensor::quantize(
            format, values, d_out, d_in,
        )?))
    }

    /// A layer holding `weight`, with the process's default activations.
    pub fn new(weight: QuantizedTensor) -> Self {
        Self {
            weight,
            activations: default_activations(),
        }
    }

    /// The same layer multiplying `activations`.
    pub fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }

    /// Whether decode rows take int8 activations and integer dot products.
    pub fn int8_active(&self) -> bool {
        self.activations == Activations::Int8 && int_dot::supports(self.weight.format)
    }

    /// Quantizes a burn `Linear`; a bias is refused.
    pub fn from_linear<B: AttentionBackend>(
        linear: &burn::nn::Linear<B>,
        format: QuantFormat,
    ) -> crate::Result<Self> {
        if linear.bias.is_some() {
            return Err(crate::ModelError::InvalidConfig(
                "QuantLinear has no bias; the layer to quantize has one".into(),
            ));
        }
        Self::from_weight(linear.weight.val(), format)
    }

    /// Input and output widths.
    pub fn dims(&self) -> (usize, usize) {
        (self.weight.cols, self.weight.rows)
    }

    /// The dequantized weight, burn-style `[d_in, d_out]`.
    pub fn dequantized<B: AttentionBackend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let (d_in, d_out) = self.dims();
        Tensor::<B, 2>::from_data(
            TensorData::new(self.weight.dequantize(), [d_out, d_in]),
            device,
        )
        .transpose()
    }

    /// Dequantize, then multiply: the definition every other path is checked against. With
    /// int8 activations ([`Self::int8_active`]) the input is first replaced by what its int8
    /// blocks represent ([`super::act::fake_quantize`]), so that prefill computes the same
    /// W4A8 arithmetic as the integer decode kernels (in f32 sums).
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → `[..., d_out]`
    pub fn forward_reference<B: AttentionBackend, const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let (d_in, d_out) = self.dims();
        let device = x.device();
        let w = self.dequantized::<B>(&device);
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let x = if self.int8_active() {
            let mut v = x
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 input");
            super::act::fake_quantize(&mut v, d_in);
            Tensor::<B, 2>::from_data(TensorData::new(v, [rows, d_in]), &device)
        } else {
            x.reshape([rows, d_in])
        };
        let y = x.matmul(w);
        dims[D - 1] = d_out;
        y.reshape(dims)
    }

    /// The fused kernel for at most [`STEP_ROWS`] rows (passes of [`MAX_ROWS`]), read from and written to host memory:
    /// integer dot products on int8 activation blocks when [`Self::int8_active`], f32
    /// activations otherwise.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` with at most [`STEP_ROWS`] rows in all → `[..., d_out]`
    pub fn forward_fused<B: AttentionBackend, const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let (d_in, d_out) = self.dims();
        let device = x.device();
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        assert!(
            rows <= STEP_ROWS,
            "the fused path takes at most {STEP_ROWS} rows"
        );
        let data = x.into_data().convert::<f32>();
        let xs = data.as_slice::<f32>().expect("f32 input");
        debug_assert_eq!(xs.len(), rows * d_in);
        let mut y = vec![0f32; rows * d_out];
        let path = IntPath::for_isa(isa::active());
        for (x, y) in xs
            .chunks(MAX_ROWS * d_in)
            .zip(y.chunks_mut(MAX_ROWS * d_out))
        {
            if self.int8_active() {
                int_dot::matvec_int8_with(path, &self.weight, x, y);
            } else {
                matvec(&self.weight, x, y);
            }
        }
        dims[D - 1] = d_out;
        Tensor::from_data(TensorData::new(y, dims), &device)
    }

    /// Several layers of one input (a block's Q, K and V; its gate and up), as one product
    /// where they allow it: decode rows on a host backend, every layer on int8 activations
    /// ([`int_dot::matvec_int8_many`]: the input quantized once, one set of tasks for all
    /// rows). Otherwise each layer's [`Self::forward`]. Equal to the layers' `forward` each.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → each `[..., d_out of that layer]`
    pub fn forward_group<B: AttentionBackend, const D: usize, const N: usize>(
        layers: [&QuantLinear; N],
        x: Tensor<B, D>,
    ) -> [Tensor<B, D>; N] {
        let rows = x.dims()[..D - 1].iter().product::<usize>();
        let d_in = x.dims()[D - 1];
        let grouped = N > 1
            && B::host_tensors()
            && rows <= STEP_ROWS
            && layers
                .iter()
                .all(|l| l.int8_active() && l.weight.cols == d_in);
        if !grouped {
            return layers.map(|l| l.forward(x.clone()));
        }
        let device = x.device();
        let dims = x.dims();
        let data = x.into_data().convert::<f32>();
        let xs = data.as_slice::<f32>().expect("f32 input");
        let mut ys: Vec<Vec<f32>> = layers
            .iter()
            .map(|l| vec![0f32; rows * l.weight.rows])
            .collect();
        let ws: Vec<&QuantizedTensor> = layers.iter().map(|l| &l.weight).collect();
        let path = IntPath::for_isa(isa::active());
        for (pass, x) in xs.chunks(MAX_ROWS * d_in).enumerate() {
            let n = x.len() / d_in;
            let mut outs: Vec<&mut [f32]> = ys
                .iter_mut()
                .zip(&ws)
                .map(|(y, w)| &mut y[pass * MAX_ROWS * w.rows..][..n * w.rows])
                .collect();
            int_dot::matvec_int8_many(path, &ws, x, &mut outs);
        }
        let mut ys = ys.into_iter();
        layers.map(|l| {
            let mut dims = dims;
            dims[D - 1] = l.weight.rows;
            let y = ys.next().expect("one output per layer");
            Tensor::from_data(TensorData::new(y, dims), &device)
        })
    }

    /// Fused kernel for decode-sized inputs on host backends, reference path otherwise.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → `[..., d_out]`
    pub fn forward<B: AttentionBackend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let rows = x.dims()[..D - 1].iter().product::<usize>();
        if B::host_tensors() && rows <= STEP_ROWS && self.weight.format != QuantFormat::F32 {
            self.forward_fused(x)
        } else {
            self.forward_reference(x)
        }
    }
}
