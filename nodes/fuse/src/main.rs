//! The fuse node's binary: settings, runtime, [`har_fuse::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_fuse::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("fuse")?;
    har_fuse::run(runtime, &settings)?;
    Ok(())
}
