//! Criterion benchmarks of the mesh SDK (`cargo bench -p mesh-benches`) and the generators
//! they share.

use std::io::Write as _;
use std::path::Path;

/// Writes a config of `services` services — a ServiceEntry, a VirtualService and a
/// DestinationRule each, so `3 × services` resources — into `dir`, 100 services per file.
pub fn generate_config(dir: &Path, services: usize) -> std::io::Result<()> {
    for chunk in 0..services.div_ceil(100) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("mesh-{chunk:04}.yaml")),
        )?);
        for i in (chunk * 100)..((chunk + 1) * 100).min(services) {
            let port = 20_000 + (i % 40_000);
            write!(
                file,
                "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: ns-{ns}}}
spec:
  hosts: [svc-{i}.ns-{ns}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: v1}}, serviceAccount: svc-{i}}}
  - {{address: 127.0.0.2, ports: {{http: {port}}}, labels: {{version: v2}}, serviceAccount: svc-{i}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}, namespace: ns-{ns}}}
spec:
  hosts: [svc-{i}]
  http:
  - match:
    - headers:
        x-canary: {{exact: \"true\"}}
    route:
    - destination: {{host: svc-{i}, subset: v2}}
  - route:
    - destination: {{host: svc-{i}, subset: v1}}
      weight: 90
    - destination: {{host: svc-{i}, subset: v2}}
      weight: 10
    timeout: 3s
    retries: {{attempts: 3, perTryTimeout: 1s, retryOn: \"5xx,reset\"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}, namespace: ns-{ns}}}
spec:
  host: svc-{i}
  trafficPolicy:
    loadBalancer: {{simple: LEAST_REQUEST}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
",
                ns = i % 20,
            )?;
        }
        file.flush()?;
    }
    Ok(())
}
