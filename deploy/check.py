"""The checks of deploy/check.sh that read files: run by it, from the
repository root, after `docker-compose config` has resolved the compose file.

Environment (set by check.sh):
  COMPOSE_SERVICES   the service names `docker-compose config --services` printed
  RESOLVED_COMPOSE   a file holding `docker-compose config`'s resolved YAML
  UPDATE_METRICS     "1" to rewrite deploy/dashboard_metrics.txt first

The metric families the services export are read from their registrations
in the Rust code (crates/*/src), the one place they are named; a Rust test
(tests/e2e/telemetry.rs) compares deploy/dashboard_metrics.txt with what the
running services actually expose.
"""

import base64
import json
import os
import pathlib
import re
import sys
from urllib.parse import urlsplit

import yaml

errors = []


def fail(msg):
    errors.append(msg)


root = pathlib.Path(".")
deploy = root / "deploy"

# --- 1. every JSON / YAML file under deploy/ parses ------------------------
parsed = {}
for path in sorted(deploy.rglob("*")):
    if not path.is_file():
        continue
    try:
        if path.suffix == ".json":
            parsed[path.as_posix()] = json.loads(path.read_text())
        elif path.suffix in (".yaml", ".yml"):
            parsed[path.as_posix()] = yaml.safe_load(path.read_text())
        else:
            continue
    except Exception as e:  # noqa: BLE001 - report any parse error
        fail(f"{path}: does not parse: {e}")
        continue
    print(f"  parsed {path}")
if errors:
    sys.exit("\n".join(f"deploy check: {e}" for e in errors))


def load(rel):
    doc = parsed.get(rel)
    if doc is None:
        sys.exit(f"deploy check: {rel} is missing or empty")
    return doc


raw_compose = yaml.safe_load(pathlib.Path("docker-compose.yml").read_text())
compose = yaml.safe_load(pathlib.Path(os.environ["RESOLVED_COMPOSE"]).read_text())
services = compose.get("services") or {}
names = set(os.environ["COMPOSE_SERVICES"].split())
if names != set(services):
    fail(f"docker-compose config --services {sorted(names)} != parsed services {sorted(services)}")
if str(raw_compose.get("version")) != "3.8":
    fail('docker-compose.yml: top-level version must be "3.8" (Compose v1 and v2)')

expected_services = {"postgres", "rabbitmq", "producer", "worker-1", "worker-2",
                     "otel-collector", "tempo", "prometheus", "grafana"}
for missing in sorted(expected_services - names):
    fail(f"docker-compose.yml: no service `{missing}`")

otel = load("deploy/otel-collector.yaml")
tempo = load("deploy/tempo.yaml")
prom = load("deploy/prometheus.yml")
datasources = load("deploy/grafana/provisioning/datasources/datasources.yaml")
providers = load("deploy/grafana/provisioning/dashboards/dashboards.yaml")
dashboard = load("deploy/grafana/dashboards/hookline.json")


def env_of(name):
    env = (services.get(name) or {}).get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def port_of(endpoint):
    """The port of `host:port` / `:port` / `scheme://host:port/...`."""
    return int(str(endpoint).rsplit(":", 1)[1].split("/")[0])


def host_port(address, default_port=None):
    """(host, port) of `host:port` or a URL."""
    text = str(address)
    if "://" not in text:
        text = "tcp://" + text
    u = urlsplit(text)
    port = u.port if u.port is not None else default_port
    return u.hostname, port


# --- 2. what each service listens on (inside the compose network) ----------
# Hookline's ports come from its own settings; the others from their config
# files where the port is configured there, else the image's documented default.
listens = {
    "postgres": {5432},
    "rabbitmq": {5672, 15672},
    "prometheus": {9090},
    "grafana": {3000},
    "tempo": {int(tempo["server"]["http_listen_port"])},
    "otel-collector": set(),
}
for name, proto in (tempo["distributor"]["receivers"]["otlp"]["protocols"] or {}).items():
    endpoint = (proto or {}).get("endpoint")
    if not endpoint or not str(endpoint).startswith("0.0.0.0:"):
        fail(f"tempo.yaml: OTLP {name} receiver must set endpoint 0.0.0.0:<port> (default is localhost only)")
        continue
    listens["tempo"].add(port_of(endpoint))
for name, proto in (otel["receivers"]["otlp"]["protocols"] or {}).items():
    endpoint = (proto or {}).get("endpoint")
    if not endpoint:
        fail(f"otel-collector.yaml: OTLP {name} receiver has no endpoint (it would bind localhost only)")
        continue
    if not str(endpoint).startswith("0.0.0.0:"):
        fail(f"otel-collector.yaml: OTLP {name} receiver {endpoint} is not reachable from other containers")
    listens["otel-collector"].add(port_of(endpoint))
if not {4317, 4318} <= listens["otel-collector"]:
    fail("otel-collector.yaml: the OTLP receiver must listen on 4317 (gRPC) and 4318 (HTTP)")

hookline = {"producer": "HOOKLINE_LISTEN_ADDR", "worker-1": "HOOKLINE_WORKER_LISTEN_ADDR",
            "worker-2": "HOOKLINE_WORKER_LISTEN_ADDR"}
for name, var in hookline.items():
    env = env_of(name)
    addr = env.get(var)
    if not addr:
        fail(f"{name}: {var} is not set")
        continue
    host, port = host_port(addr)
    if host not in ("0.0.0.0", "::"):
        fail(f"{name}: {var}={addr} does not listen on all interfaces")
    listens[name] = {port}

for name, ports in listens.items():
    print(f"  {name} listens on {sorted(ports)}")

# Published and exposed container ports must be ports the service listens on.
for name, svc in services.items():
    declared = []
    for p in svc.get("ports") or []:
        declared.append(int(p["target"]) if isinstance(p, dict) else port_of(str(p).split("/")[0]))
    declared += [int(str(p).split("/")[0]) for p in svc.get("expose") or []]
    for port in declared:
        if port not in listens.get(name, set()):
            fail(f"{name}: publishes/exposes {port}, which it does not listen on")

# Published host ports the README promises.
published = {}
for name, svc in services.items():
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            published[int(p.get("published", 0) or 0)] = name
        else:
            published[int(str(p).split(":")[0])] = name
for port, name in {8080: "producer", 3000: "grafana", 9090: "prometheus", 15672: "rabbitmq"}.items():
    if published.get(port) != name:
        fail(f"docker-compose.yml: host port {port} should be published by `{name}`")


def check_target(where, host, port):
    if host not in names:
        fail(f"{where}: `{host}` is not a service of docker-compose.yml")
    elif port not in listens.get(host, set()):
        fail(f"{where}: `{host}` does not listen on {port} (it listens on {sorted(listens.get(host, ()))})")
    else:
        print(f"  ok {where} -> {host}:{port}")


# --- 3. cross-references ----------------------------------------------------
# Prometheus scrape targets; every Hookline service is scraped at /metrics.
scraped = set()
for job in prom.get("scrape_configs") or []:
    if job.get("metrics_path", "/metrics") != "/metrics":
        fail(f"prometheus.yml: job {job.get('job_name')} scrapes {job.get('metrics_path')}, not /metrics")
    interval = job.get("scrape_interval", (prom.get("global") or {}).get("scrape_interval"))
    if interval != "5s":
        fail(f"prometheus.yml: job {job.get('job_name')} scrapes every {interval}, not 5s")
    for sc in job.get("static_configs") or []:
        for t in sc.get("targets") or []:
            host, port = host_port(t)
            check_target(f"prometheus.yml job {job.get('job_name')}", host, port)
            scraped.add((host, port))
for name, ports in ((n, listens.get(n, set())) for n in hookline):
    for port in ports:
        if (name, port) not in scraped:
            fail(f"prometheus.yml: {name}:{port} is not scraped")
command = " ".join(str(c) for c in (services.get("prometheus") or {}).get("command") or [])
if "--enable-feature=exemplar-storage" not in command:
    fail("prometheus: --enable-feature=exemplar-storage is missing (no exemplars without it)")

# Collector exporters used by the traces pipeline.
pipelines = otel["service"]["pipelines"]
traces_exporters = (pipelines.get("traces") or {}).get("exporters") or []
if not traces_exporters:
    fail("otel-collector.yaml: no traces pipeline exporter")
for exp in traces_exporters:
    endpoint = (otel["exporters"].get(exp) or {}).get("endpoint")
    if endpoint is None:
        fail(f"otel-collector.yaml: exporter {exp} has no endpoint")
        continue
    host, port = host_port(endpoint)
    check_target(f"otel-collector.yaml exporter {exp}", host, port)
    if host == "tempo" and port != 4317:
        fail("otel-collector.yaml: Tempo's OTLP gRPC receiver is on 4317")

# Grafana data sources.
ds_by_uid = {}
for ds in datasources.get("datasources") or []:
    ds_by_uid[ds.get("uid")] = ds
    host, port = host_port(ds["url"], 80)
    check_target(f"datasource {ds.get('uid')}", host, port)
for uid, kind in (("prometheus", "prometheus"), ("tempo", "tempo")):
    if (ds_by_uid.get(uid) or {}).get("type") != kind:
        fail(f"datasources.yaml: no {kind} data source with uid `{uid}`")
for dest in ((ds_by_uid.get("prometheus") or {}).get("jsonData") or {}).get("exemplarTraceIdDestinations") or [{}]:
    if dest.get("name") != "trace_id" or dest.get("datasourceUid") not in ds_by_uid:
        fail(f"datasources.yaml: exemplar destination {dest} must map trace_id to a known data source")

# Dashboard provider path is where compose mounts the dashboards.
provider_paths = {(p.get("options") or {}).get("path") for p in providers.get("providers") or []}
grafana_mounts = {}
for v in (services.get("grafana") or {}).get("volumes") or []:
    if isinstance(v, dict):
        grafana_mounts[v.get("target")] = str(v.get("source"))
    else:
        parts = str(v).split(":")
        if len(parts) >= 2:
            grafana_mounts[parts[1]] = parts[0]
for path in provider_paths:
    src = grafana_mounts.get(path, "")
    if not src.rstrip("/").endswith("deploy/grafana/dashboards"):
        fail(f"dashboards.yaml: provider path {path} is not where deploy/grafana/dashboards is mounted")

# Hookline's own settings point at services that exist.
for name in hookline:
    env = env_of(name)
    for var, default_port in (("HOOKLINE_DATABASE_URL", 5432), ("HOOKLINE_AMQP_URL", 5672),
                              ("OTEL_EXPORTER_OTLP_ENDPOINT", None)):
        if var not in env:
            fail(f"{name}: {var} is not set")
            continue
        host, port = host_port(env[var], default_port)
        check_target(f"{name} {var}", host, port)
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") and port_of(env["OTEL_EXPORTER_OTLP_ENDPOINT"]) != 4318:
        fail(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT should be the collector's OTLP HTTP port 4318")
    if len(min((k.strip() for k in env.get("HOOKLINE_API_KEYS", "").split(",")), key=len, default="")) < 16:
        fail(f"{name}: every HOOKLINE_API_KEYS entry must be at least 16 characters")
    for entry in env.get("HOOKLINE_ENCRYPTION_KEYS", "").split(","):
        key_id, _, key = entry.strip().partition(":")
        try:
            ok = bool(re.fullmatch(r"[A-Za-z0-9_-]{1,32}", key_id)) and len(base64.b64decode(key, validate=True)) == 32
        except ValueError:
            ok = False
        if not ok:
            fail(f"{name}: HOOKLINE_ENCRYPTION_KEYS entry `{key_id}:…` is not `<id>:<base64 of 32 bytes>`")
worker_envs = [env_of(n) for n in hookline]
for var in ("HOOKLINE_API_KEYS", "HOOKLINE_ENCRYPTION_KEYS", "HOOKLINE_DATABASE_URL", "HOOKLINE_AMQP_URL"):
    if len({e.get(var) for e in worker_envs}) != 1:
        fail(f"producer and workers disagree on {var}")

# Files the stack mounts from the repository exist.
for name, svc in raw_compose.get("services", {}).items():
    for v in svc.get("volumes") or []:
        src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
        if src and src.startswith("./") and not pathlib.Path(src).exists():
            fail(f"{name}: mounts {src}, which does not exist")
    build = svc.get("build")
    if isinstance(build, dict) and not (pathlib.Path(build.get("context", ".")) / build.get("dockerfile", "Dockerfile")).is_file():
        fail(f"{name}: build dockerfile {build.get('dockerfile')} does not exist")

# --- 4. dashboard metrics ---------------------------------------------------
# What the services export, read from where they register each family:
# `Counter::register(registry, "hookline_…_total", …)`, `Gauge::register`,
# `Histogram::register` (hookline_telemetry::metrics). Histograms are listed
# by their family name.
REGISTRATION = re.compile(r'\b(Counter|Gauge|Histogram)(?:::<[^>]*>)?::register\(\s*[^,()]+,\s*"(hookline_[a-z0-9_]+)"')
EXPORTED = set()
HISTOGRAMS = set()
for path in sorted(root.glob("crates/*/src/**/*.rs")):
    for kind, name in REGISTRATION.findall(path.read_text()):
        if name in EXPORTED:
            fail(f"{path}: metric family `{name}` is registered twice")
        EXPORTED.add(name)
        if kind == "Histogram":
            HISTOGRAMS.add(name)
if not EXPORTED:
    fail("no metric family registration (`Counter::register(r, \"hookline_…\", …)`) found under crates/*/src")
print(f"  services register {len(EXPORTED)} metric families ({len(HISTOGRAMS)} histograms)")

def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


if dashboard.get("uid") != "hookline" or dashboard.get("title") != "Hookline":
    fail("hookline.json: uid must be `hookline` and title `Hookline`")
exprs = []
ids = set()
exemplar_on_latency = False
for p in walk_panels(dashboard.get("panels")):
    if p.get("id") in ids:
        fail(f"hookline.json: panel id {p.get('id')} is used twice")
    ids.add(p.get("id"))
    for t in p.get("targets") or []:
        ds = t.get("datasource") or p.get("datasource") or {}
        if ds.get("uid") != "prometheus":
            fail(f"hookline.json: panel `{p.get('title')}` queries data source {ds}, not uid prometheus")
        expr = t.get("expr", "")
        exprs.append(expr)
        if t.get("exemplar") and "hookline_delivery_latency_seconds_bucket" in expr:
            exemplar_on_latency = True
if not exemplar_on_latency:
    fail("hookline.json: no latency target with exemplars on (`\"exemplar\": true`)")

queried = set()
for expr in exprs:
    for token in re.findall(r"\bhookline_[a-zA-Z0-9_:]*", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", token)
        if base != token and base not in HISTOGRAMS:
            fail(f"hookline.json: `{token}` is not a series of a histogram family")
        if token in HISTOGRAMS:
            fail(f"hookline.json: histogram `{token}` is queried without _bucket/_sum/_count")
        queried.add(base)
for name in sorted(queried - EXPORTED):
    fail(f"hookline.json: queries `{name}`, which the services do not export")

listing = pathlib.Path("deploy/dashboard_metrics.txt")
expected = "".join(f"{n}\n" for n in sorted(queried))
if os.environ.get("UPDATE_METRICS") == "1":
    listing.write_text(expected)
    print(f"  wrote {listing}")
current = listing.read_text() if listing.exists() else None
if current != expected:
    fail(f"{listing} is out of date with the dashboard: run `bash deploy/check.sh --update`"
         f"\n  expected:\n    " + expected.replace("\n", "\n    ").rstrip()
         + "\n  found:\n    " + (current or "(missing)\n").replace("\n", "\n    ").rstrip())
print(f"  dashboard queries {len(queried)} metric families; {len(EXPORTED - queried)} exported ones unused")

if errors:
    sys.exit("\n".join(f"deploy check: {e}" for e in errors))
