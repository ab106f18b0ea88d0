//! The sensor-ingest node's binary: settings, runtime, [`har_sensor_ingest::run`].

fn main() -> anyhow::Result<()> {
    har_dataflow::runtime::init_logging();
    let settings = har_sensor_ingest::Settings::from_env()?;
    let runtime = har_dataflow::runtime::NodeRuntime::init("sensor-ingest")?;
    har_sensor_ingest::run(runtime, &settings)?;
    Ok(())
}
