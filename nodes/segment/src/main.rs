//! The segment node's binary: settings, runtime, [`har_segment::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_segment::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("segment")?;
    har_segment::run(runtime, &settings)?;
    Ok(())
}
