//! The scene node's binary: settings, runtime, [`har_scene::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_scene::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("scene")?;
    har_scene::run(runtime, &settings)?;
    Ok(())
}
