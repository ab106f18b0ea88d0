//! The encode node's binary: settings, runtime, [`har_encode::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_encode::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init(&settings.node_name())?;
    har_encode::run(runtime, &settings)?;
    Ok(())
}
