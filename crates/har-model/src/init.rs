//! Seeded, order-independent parameter initialisation.
//!
//! candle's CPU random generator cannot be seeded, so parameters are created through this
//! `VarBuilder` backend instead: each parameter's values come from a generator seeded by the
//! run's seed and the parameter's name, so a fixed seed gives the same model whatever the order
//! in which layers are built. Created parameters are registered in a [`VarMap`] for training.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use har_core::rng::Rng;

/// A `VarBuilder` backend creating seeded parameters in a `VarMap`.
pub struct SeededInit {
    varmap: VarMap,
    seed: u64,
}

/// A stable 64-bit hash of a parameter name (FNV-1a, independent of the std hasher's seed).
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn values(init: Init, n: usize, fan_in: usize, rng: &mut Rng) -> Vec<f32> {
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| (mean + stdev * rng.normal()) as f32)
            .collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.uniform(lo, up) as f32).collect(),
        Init::Kaiming { .. } => {
            let std = (1.0 / fan_in.max(1) as f64).sqrt();
            (0..n).map(|_| (std * rng.normal()) as f32).collect()
        }
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("varmap lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter {name}: shape {:?} requested, {:?} exists",
                    shape,
                    var.shape()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let fan_in = shape.dims().last().copied().unwrap_or(1);
        let mut rng = Rng::new(self.seed ^ name_hash(name));
        let tensor = Tensor::from_vec(
            values(init, shape.elem_count(), fan_in, &mut rng),
            shape,
            dev,
        )?
        .to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.varmap.data().lock().expect("varmap lock");
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock")
            .contains_key(name)
    }
}

/// A `VarBuilder` whose new parameters are seeded and collected in `varmap`.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64) -> VarBuilder<'static> {
    let backend: Box<dyn candle_nn::var_builder::SimpleBackend> = Box::new(SeededInit {
        varmap: varmap.clone(),
        seed,
    });
    VarBuilder::from_backend(backend, DType::F32, Device::Cpu)
}
