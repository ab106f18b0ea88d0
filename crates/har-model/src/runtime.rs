//! The bridge to the runtime: a candle model's parameters as runtime [`Weights`], so the
//! forward the dataflow runs can be built from weights still in training (distillation from
//! a freshly trained teacher, the equivalence tests).

use std::collections::HashMap;
use std::path::Path;

use candle_nn::VarMap;
use har_runtime::config::DmftConfig;
use har_runtime::weights::{WeightTensor, Weights};

use crate::error::Result;

/// The parameters of `varmap` as runtime weights (checked finite like a weights file).
pub fn varmap_weights(varmap: &VarMap) -> Result<Weights> {
    let data = varmap.data().lock().expect("varmap lock");
    let tensors = data
        .iter()
        .map(|(name, var)| {
            let t = var.as_tensor();
            Ok((
                name.clone(),
                WeightTensor {
                    shape: t.dims().to_vec(),
                    values: t.flatten_all()?.to_vec1::<f32>()?,
                },
            ))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    Ok(Weights::new(Path::new("<parameters in memory>"), tensors)?)
}

/// The runtime forward pass of a DMFT of `config` with the parameters of `varmap`.
pub fn runtime_dmft(config: &DmftConfig, varmap: &VarMap) -> Result<har_runtime::dmft::Dmft> {
    Ok(har_runtime::dmft::Dmft::load(
        config,
        &varmap_weights(varmap)?,
    )?)
}
