//! `streetgate demo`: the sidecar on an embedded config in front of a built-in sample works API.

pub async fn run(_port: u16) -> anyhow::Result<()> {
    anyhow::bail!("demo not built yet")
}
