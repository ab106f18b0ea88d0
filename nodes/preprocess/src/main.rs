//! The preprocess node's binary: settings, runtime, [`har_preprocess::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_preprocess::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("preprocess")?;
    har_preprocess::run(runtime, &settings)?;
    Ok(())
}
