//! `QuantLinear`: a bias-free linear layer that holds packed codes and scales only.
//!
//! `forward_reference` dequantizes and multiplies (the definition). `forward` takes the fused
//! host kernel ([`super::matvec`]) for up to eight rows on backends whose tensors live in host
//! memory (flex), and the reference path otherwise: prefill-sized matrix products, and CUDA,
//! where burn 0.21 offers no quantized matmul for these formats.

use std::marker::PhantomData;

use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::format::QuantFormat;
use super::matvec::{matvec, MAX_ROWS};
use super::tensor::QuantizedTensor;
use crate::kernels::AttentionBackend;

/// A quantized bias-free linear layer `y = x · Wᵀ` with `W` stored `[out, in]`.
#[derive(Clone, Debug)]
pub struct QuantLinear<B: Backend> {
    /// Codes and scales, `[d_out, d_in]`.
    pub weight: QuantizedTensor,
    device: B::Device,
    _backend: PhantomData<B>,
}

impl<B: AttentionBackend> QuantLinear<B> {
    /// Quantizes a burn `Linear` (weight `[d_in, d_out]`); a bias is refused.
    pub fn from_linear(linear: &Linear<B>, format: QuantFormat) -> crate::Result<Self> {
        if linear.bias.is_some() {
            return Err(crate::ModelError::InvalidConfig(
                "QuantLinear has no bias; the layer to quantize has one".into(),
            ));
        }
        let w = linear.weight.val();
        let device = w.device();
        let [d_in, d_out] = w.dims();
        let t = w.transpose().into_data().convert::<f32>();
        let values = t.as_slice::<f32>().expect("f32 weights");
        Ok(Self {
            weight: QuantizedTensor::quantize(format, values, d_out, d_in)?,
            device,
            _backend: PhantomData,
        })
    }

    /// Input and output widths.
    pub fn dims(&self) -> (usize, usize) {
        (self.weight.cols, self.weight.rows)
    }

    /// Dequantize, then multiply: the definition every other path is checked against.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → `[..., d_out]`
    pub fn forward_reference<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (d_in, d_out) = self.dims();
        let w = Tensor::<B, 2>::from_data(
            TensorData::new(self.weight.dequantize(), [d_out, d_in]),
            &self.device,
        );
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = x.reshape([rows, d_in]).matmul(w.transpose());
        dims[D - 1] = d_out;
        y.reshape(dims)
    }

    /// The fused kernel for at most [`MAX_ROWS`] rows, read from and written to host memory.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` with at most 8 rows in all → `[..., d_out]`
    pub fn forward_fused<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (d_in, d_out) = self.dims();
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        assert!(
            rows <= MAX_ROWS,
            "the fused path takes at most {MAX_ROWS} rows"
        );
        let data = x.into_data().convert::<f32>();
        let xs = data.as_slice::<f32>().expect("f32 input");
        let mut y = vec![0f32; rows * d_out];
        matvec(&self.weight, xs, &mut y);
        debug_assert_eq!(xs.len(), rows * d_in);
        dims[D - 1] = d_out;
        Tensor::from_data(TensorData::new(y, dims), &self.device)
    }

    /// Fused kernel for decode-sized inputs on host backends, reference path otherwise.
    ///
    /// # Shapes
    /// - `x`: `[..., d_in]` → `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let rows = x.dims()[..D - 1].iter().product::<usize>();
        if B::host_tensors() && rows <= MAX_ROWS && self.weight.format != QuantFormat::F32 {
            self.forward_fused(x)
        } else {
            self.forward_reference(x)
        }
    }
}
