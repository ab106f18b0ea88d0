//! The log node's binary: settings, runtime, [`har_log::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_log::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("log")?;
    har_log::run(runtime, &settings)?;
    Ok(())
}
