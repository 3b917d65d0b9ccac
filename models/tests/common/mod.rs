//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)]

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};

/// The backend the tests run on.
pub type B = Flex;

/// The default flex device.
pub fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

/// One sequence of token ids, `[1, len]`.
pub fn tokens(ids: &[i64]) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &dev())
}

/// A tensor's values on the host.
pub fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}
