//! An HTTP origin container (nginx, `kpbt/nginx:dev`) serving a swarm's payload, and the
//! bytes it sent, read from its access log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testcontainers::core::{AccessMode, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::docker::NGINX_IMAGE;
use crate::swarm::{logs, Swarm};

const ORIGIN_PORT: u16 = 8080;

/// nginx serving the swarm's original payload directory read-only, as web seed.
pub struct Origin {
    /// The directory URL peers take as `--origin` (the torrent's name and file paths
    /// are appended, BEP 19).
    pub url: String,
    container: ContainerAsync<GenericImage>,
}

impl Origin {
    /// Starts the origin on the swarm's network and waits until it answers HTTP.
    pub async fn start(swarm: &Swarm) -> Result<Origin> {
        let name = format!("{}-origin", swarm.prefix);
        let container = GenericImage::new(NGINX_IMAGE.0, NGINX_IMAGE.1)
            .with_exposed_port(ORIGIN_PORT.tcp())
            .with_wait_for(WaitFor::Nothing)
            .with_network(&swarm.network)
            .with_container_name(&name)
            .with_mount(
                Mount::bind_mount(swarm.payload_dir().to_string_lossy(), "/www")
                    .with_access_mode(AccessMode::ReadOnly),
            )
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .with_context(|| format!("starting origin container {name}"))?;
        let port = container.get_host_port_ipv4(ORIGIN_PORT.tcp()).await?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = tokio::task::spawn_blocking(move || {
                kpbt_testkit::http_get(addr, "/", Duration::from_secs(2))
            })
            .await?;
            // Any HTTP status means nginx is serving (the root has no index: 403/404).
            if probe.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "origin {name} did not answer HTTP within 30 s: {probe:?}; log:\n{}",
                    logs(&container).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Origin {
            url: format!("http://{name}:{ORIGIN_PORT}/"),
            container,
        })
    }

    /// Body bytes of successful (200/206) responses so far, from the access log
    /// (`STATUS BYTES URI` lines, docker/nginx/nginx.conf).
    pub async fn bytes_served(&self) -> Result<u64> {
        let out = self.container.stdout_to_vec().await?;
        Ok(served(&String::from_utf8_lossy(&out)))
    }

    pub async fn logs(&self) -> String {
        logs(&self.container).await
    }
}

fn served(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let status = f.next()?;
            let bytes: u64 = f.next()?.parse().ok()?;
            matches!(status, "200" | "206").then_some(bytes)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn served_sums_successful_bodies_only() {
        let log = "206 4194304 /kpbt-swarm/a.bin\n404 153 /nope\n200 10 /x\nnoise\n206 12 /y\n";
        assert_eq!(super::served(log), 4194304 + 10 + 12);
    }
}
