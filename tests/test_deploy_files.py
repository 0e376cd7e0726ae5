"""The deployment files (deploy/: the Dockerfile, docker compose, Kubernetes) mirror the
tested loopback cluster (bot/cluster/) where it matters and could drift: the Rasa
servers' channels and endpoints as bot/cluster/files.py writes them, nginx's three doors
and their rules as deploy/loopback/nginx.conf.in has them (rendered by files.py: the rate,
the retries, the fallback answers), two Rasa servers and two action servers, the action
servers reachable through the actions door only, and every secret compose needs listed in
deploy/.env.example. Files only: nothing here starts a server or needs Docker
(deploy/README.md says what was run by hand).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.cluster import files
from bot.cluster.layout import Layout
from bot.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
NAMESPACE = "kefu-95598"
# nginx's doors by port, the same numbers as the loopback cluster's defaults
PUBLIC, API, ACTIONS = 8080, 5100, 5150
# where a door may differ from the loopback one: who is let in, and whose address counts
ADDRESS_RULES = {"listen", "allow", "deny", "set_real_ip_from", "real_ip_header", "real_ip_recursive"}
# http-level settings the doors depend on (paths, logs and the resolver may differ)
HTTP_RULES = {
    "limit_req_zone",
    "limit_req_status",
    "limit_req_log_level",
    "client_max_body_size",
    "server_tokens",
    "proxy_http_version",
    "proxy_set_header",
    "map",
}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """The loopback cluster with its defaults (what `python -m bot cluster up` runs)."""
    return Layout.from_env({"CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster"))})


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    """Every Kubernetes object in deploy/k8s/ by (kind, name)."""
    found = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda path: str(path.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert docs and all(isinstance(doc, dict) for doc in docs)


# --- nginx ------------------------------------------------------------------------------

_TOKEN = re.compile(r"""#[^\n]*|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|[{};]|[^\s{};'"#]+""")


def parse_nginx(text: str) -> list[tuple[str, tuple[str, ...], list | None]]:
    """nginx's configuration as (directive, arguments, block or None), nested."""
    tokens = [token for token in _TOKEN.findall(text) if not token.startswith("#")]
    position = 0

    def block() -> list:
        nonlocal position
        directives, words = [], []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                directives.append((words[0], tuple(words[1:]), None))
                words = []
            elif token == "{":
                directives.append((words[0], tuple(words[1:]), block()))
                words = []
            elif token == "}":
                return directives
            else:
                words.append(token)
        assert not words, f"unterminated directive {words}"
        return directives

    return block()


def _inside(config: list, name: str) -> list:
    [found] = [body for directive, _args, body in config if directive == name]
    return found


def _port(listen: tuple[str, ...]) -> int:
    return int(listen[0].rsplit(":", 1)[-1])


def doors(config: list) -> dict[int, list]:
    """The http block's servers by the port they listen on."""
    found = {}
    for directive, _args, body in _inside(config, "http"):
        if directive == "server":
            [listen] = [args for name, args, _ in body if name == "listen"]
            found[_port(listen)] = body
    return found


def door_rules(server: list) -> dict[tuple[str, ...], list]:
    """A door's locations and their directives (the rules), plus its other directives."""
    rules: dict[tuple[str, ...], list] = {("(server)",): []}
    for directive, args, body in server:
        if directive == "location":
            rules[args] = sorted((name, words) for name, words, _ in body)
        elif directive not in ADDRESS_RULES:
            rules[("(server)",)].append((directive, args))
    return rules


def upstreams(config: list) -> dict[str, list]:
    return {args[0]: body for directive, args, body in _inside(config, "http") if directive == "upstream"}


def server_options(upstream: list) -> list[tuple[str, ...]]:
    """Each upstream server's options, without its address and `resolve`."""
    return [tuple(word for word in args[1:] if word != "resolve") for name, args, _ in upstream if name == "server"]


def server_hosts(upstream: list) -> list[str]:
    return [args[0] for name, args, _ in upstream if name == "server"]


@pytest.fixture(scope="module")
def loopback_nginx(layout: Layout) -> list:
    return parse_nginx(files.nginx_conf(layout))


@pytest.fixture(scope="module")
def compose_nginx() -> list:
    return parse_nginx((DEPLOY / "compose" / "nginx.conf").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def k8s_nginx(k8s: dict) -> list:
    return parse_nginx(k8s[("ConfigMap", "nginx-conf")]["data"]["nginx.conf"])


def test_the_parser_reads_the_loopback_doors(loopback_nginx: list, layout: Layout) -> None:
    assert set(doors(loopback_nginx)) == {layout.public_port, layout.api_port, layout.actions_port}
    assert (layout.public_port, layout.api_port, layout.actions_port) == (PUBLIC, API, ACTIONS)


@pytest.mark.parametrize("deployed", ["compose_nginx", "k8s_nginx"])
def test_nginx_has_the_loopback_doors_and_rules(deployed: str, loopback_nginx: list, request) -> None:
    """Same doors, same locations, same directives in each: the rate limit on REST and
    socket.io but not WeChat, the retry rules, the busy answer, the API door, the actions
    door's fallback answer (the texts from bot/replies.yml as files.py renders them)."""
    config = request.getfixturevalue(deployed)
    ours, theirs = doors(config), doors(loopback_nginx)
    assert set(ours) == set(theirs) == {PUBLIC, API, ACTIONS}
    for port in theirs:
        assert door_rules(ours[port]) == door_rules(theirs[port]), f"door {port} differs from the loopback one"

    def http_rules(parsed: list) -> list:
        return sorted((name, args) for name, args, _ in _inside(parsed, "http") if name in HTTP_RULES)

    assert http_rules(config) == http_rules(loopback_nginx)
    limits = [args for name, args, _ in _inside(config, "http") if name == "limit_req_zone"]
    assert limits == [("$binary_remote_addr", "zone=customers:10m", "rate=10r/s")]


@pytest.mark.parametrize("deployed", ["compose_nginx", "k8s_nginx"])
def test_nginx_upstreams_balance_and_fail_over_as_on_loopback(deployed: str, loopback_nginx: list, request) -> None:
    config = request.getfixturevalue(deployed)
    ours, theirs = upstreams(config), upstreams(loopback_nginx)
    assert set(ours) == set(theirs) == {"rasa", "actions"}
    for name in theirs:
        assert _balancing(ours[name]) == _balancing(theirs[name])
        assert set(server_options(ours[name])) == set(server_options(theirs[name]))
        # by name, looked up again while running: needs a zone per upstream
        assert any(d == "zone" for d, _a, _b in ours[name])
        assert all("resolve" in args for d, args, _ in ours[name] if d == "server")


def _balancing(upstream: list) -> list:
    """An upstream's rules besides its servers (least_conn, keepalive)."""
    return sorted((name, args) for name, args, _ in upstream if name not in {"server", "zone"})


def _nginx_image_version(image: str) -> tuple[int, ...]:
    return tuple(int(part) for part in image.split(":", 1)[1].split("."))


def test_nginx_images_know_upstream_resolve(compose: dict, k8s: dict) -> None:
    """`server ... resolve` in an upstream is open-source nginx from 1.27.3 on."""
    images = [compose["services"]["nginx"]["image"]]
    images += [c["image"] for c in k8s[("Deployment", "nginx")]["spec"]["template"]["spec"]["containers"]]
    for image in images:
        assert image.startswith("nginx:") and _nginx_image_version(image) >= (1, 27), image


# --- the Rasa servers' files -----------------------------------------------------------


@pytest.fixture(scope="module")
def deployed_endpoints() -> dict:
    return yaml.safe_load((DEPLOY / "compose" / "endpoints.yml").read_text(encoding="utf-8"))


def test_kubernetes_serves_the_same_endpoints_and_channels(k8s: dict) -> None:
    data = k8s[("ConfigMap", "rasa-files")]["data"]
    for name in ("endpoints.yml", "credentials.yml"):
        assert data[name] == (DEPLOY / "compose" / name).read_text(encoding="utf-8"), name


def test_channels_are_the_loopback_clusters(layout: Layout) -> None:
    deployed = yaml.safe_load((DEPLOY / "compose" / "credentials.yml").read_text(encoding="utf-8"))
    assert deployed == files.credentials(layout)
    assert files.REST_CHANNEL in deployed and files.SOCKETIO_CHANNEL in deployed


def test_endpoints_are_the_loopback_clusters_with_service_names(deployed_endpoints: dict, layout: Layout) -> None:
    loopback = files.endpoints(layout)
    assert set(deployed_endpoints) == set(loopback)
    for section, settings in loopback.items():
        assert set(deployed_endpoints[section]) == set(settings), section
        for key in ("type", "dialect", "db", "port", "queues"):
            if key in settings:
                assert deployed_endpoints[section][key] == settings[key], f"{section}.{key}"
        if "password" in settings:  # the same variable, filled in by Rasa
            assert deployed_endpoints[section]["password"] == settings["password"], section
    assert deployed_endpoints["lock_store"]["type"] == "bot.lock_store.AtomicRedisLockStore"
    assert deployed_endpoints["event_broker"]["queues"] == [layout.events_queue]


def test_rasa_reads_the_endpoints(deployed_endpoints: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.utils import AvailableEndpoints

    for name in _variables((DEPLOY / "compose" / "endpoints.yml").read_text(encoding="utf-8")):
        monkeypatch.setenv(name, f"value-of-{name}")
    read = AvailableEndpoints.read_endpoints(str(DEPLOY / "compose" / "endpoints.yml"))
    assert read.tracker_store.type == "bot.tracker_store.PatientSQLTrackerStore"
    assert read.tracker_store.kwargs["password"] == "value-of-TRACKER_STORE_PASSWORD"
    assert read.lock_store.type == "bot.lock_store.AtomicRedisLockStore"
    assert read.event_broker.kwargs["queues"] == deployed_endpoints["event_broker"]["queues"]
    assert read.action.url == deployed_endpoints["action_endpoint"]["url"]


def test_secrets_in_endpoints_stop_rasa_when_unset_and_channel_values_do_not() -> None:
    """Unquoted ${...} in endpoints.yml: Rasa refuses to start without it; quoted ones in
    credentials.yml are left to the channel (which takes an unset one as empty)."""
    endpoints = (DEPLOY / "compose" / "endpoints.yml").read_text(encoding="utf-8")
    credentials = (DEPLOY / "compose" / "credentials.yml").read_text(encoding="utf-8")
    assert re.findall(r"[\"']\$\{", endpoints) == []
    assert len(re.findall(r"\$\{", credentials)) == len(re.findall(r"\"\$\{[A-Z_]+\}\"", credentials)) > 0


def test_the_action_endpoint_is_nginxs_actions_door(deployed_endpoints: dict, compose: dict, k8s: dict) -> None:
    url = deployed_endpoints["action_endpoint"]["url"]
    match = re.fullmatch(r"http://([a-z-]+):(\d+)/webhook", url)
    assert match, url
    host, port = match[1], int(match[2])
    assert port == ACTIONS
    assert host in compose["services"]["nginx"]["networks"]["actions"]["aliases"]
    service = k8s[("Service", host)]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "nginx"
    assert [p["port"] for p in service["spec"]["ports"]] == [ACTIONS]


# --- how many of each ------------------------------------------------------------------


def test_two_rasa_servers_and_two_action_servers(compose: dict, k8s: dict, layout: Layout) -> None:
    services = compose["services"]
    for prefix, command, count in (
        ("rasa", "rasa-server", len(layout.rasa_ports)),
        ("actions", "action-server", len(layout.action_ports)),
    ):
        named = [name for name in services if re.fullmatch(rf"{prefix}-\d+", name)]
        assert len(named) == count == 2, prefix
        assert all(services[name]["command"] == [command] for name in named)
        assert k8s[("Deployment", prefix)]["spec"]["replicas"] == count
    assert [c["args"] for c in k8s[("Deployment", "rasa")]["spec"]["template"]["spec"]["containers"]] == [
        ["rasa-server"]
    ]


def test_compose_nginx_upstreams_are_the_compose_servers(compose_nginx: list, compose: dict) -> None:
    for upstream, port in (("rasa", 5005), ("actions", 5055)):
        hosts = server_hosts(upstreams(compose_nginx)[upstream])
        servers = [name for name in compose["services"] if name.startswith(f"{upstream}-")]
        assert sorted(hosts) == sorted(f"{name}:{port}" for name in servers)


def test_kubernetes_nginx_upstreams_are_headless_services(k8s_nginx: list, k8s: dict) -> None:
    for upstream, component in (("rasa", "rasa"), ("actions", "actions")):
        [host] = server_hosts(upstreams(k8s_nginx)[upstream])
        name, port = host.split(".")[0], int(host.rsplit(":", 1)[1])
        assert host == f"{name}.{NAMESPACE}.svc.cluster.local:{port}"
        service = k8s[("Service", name)]["spec"]
        assert service["clusterIP"] == "None" and service["selector"]["app.kubernetes.io/component"] == component
        deployment = k8s[("Deployment", component)]["spec"]["template"]["spec"]["containers"][0]
        assert [p["containerPort"] for p in deployment["ports"]] == [port]


# --- only the Rasa servers reach the action servers --------------------------------------


def test_compose_keeps_the_action_servers_on_the_actions_network(compose: dict, compose_nginx: list) -> None:
    services, network = compose["services"], compose["networks"]["actions"]
    assert network["internal"] is True
    subnet = network["ipam"]["config"][0]["subnet"]
    members = {name for name, spec in services.items() if "actions" in (spec.get("networks") or [])}
    # the recovery worker only looks at the door's health (bot/cluster/recovery.py)
    expected = {"nginx", "recovery"} | {name for name in services if re.fullmatch(r"(rasa|actions)-\d+", name)}
    assert members == expected
    actions_door = doors(compose_nginx)[ACTIONS]
    assert [args for name, args, _ in actions_door if name in {"allow", "deny"}] == [(subnet,), ("all",)]
    prefix = subnet.rsplit(".", 1)[0] + "."
    for name in (name for name in services if name.startswith("actions-")):
        spec = services[name]
        assert "ports" not in spec, f"{name} must not be published"
        address = spec["networks"]["actions"]["ipv4_address"]
        # Sanic listens on that address only, as the loopback action servers on 127.0.0.1
        assert address.startswith(prefix) and spec["environment"]["SANIC_HOST"] == address
    published = {name for name, spec in services.items() if spec.get("ports")}
    assert published == {"nginx", "console", "website"}
    assert [port.split(":")[-1] for port in services["nginx"]["ports"]] == [str(PUBLIC)]


def _policy_sources(policy: dict) -> dict[int, list[dict]]:
    sources: dict[int, list[dict]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            sources.setdefault(port["port"], []).extend(rule["from"])
    return sources


def test_kubernetes_lets_only_the_rasa_pods_reach_the_action_servers(k8s: dict) -> None:
    assert k8s[("NetworkPolicy", "default-deny-ingress")]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    policies = [doc for (kind, _), doc in k8s.items() if kind == "NetworkPolicy"]

    def sources_for(component: str) -> dict[int, list[dict]]:
        found: dict[int, list[dict]] = {}
        for policy in policies:
            selector = policy["spec"]["podSelector"]
            labels = selector.get("matchLabels", {})
            chosen = labels.get("app.kubernetes.io/component") == component or any(
                component in expr["values"] for expr in selector.get("matchExpressions", [])
            )
            for port, sources in (_policy_sources(policy) if chosen and "ingress" in policy["spec"] else {}).items():
                found.setdefault(port, []).extend(sources)
        return found

    def only(component: str) -> list[dict]:
        return [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": component}}}]

    assert sources_for("actions") == {5055: only("nginx")}
    assert sources_for("nginx")[ACTIONS] == only("rasa") + only("recovery")  # the worker: health only
    assert sources_for("nginx")[API] == only("console") + only("recovery")
    assert sources_for("rasa") == {5005: only("nginx")}


# --- secrets and settings --------------------------------------------------------------


def _variables(text: str) -> set[str]:
    """${NAME...} used in a file, outside comment lines ($${...} is compose's escape for a
    literal ${)."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def _env_example() -> dict[str, str]:
    entries = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip()
    return entries


def test_env_example_lists_every_compose_variable_and_holds_no_secret() -> None:
    used, listed = _variables(COMPOSE.read_text(encoding="utf-8")), _env_example()
    assert used == set(listed), f"missing: {sorted(used - set(listed))}, unused: {sorted(set(listed) - used)}"
    required = {name for name in used if re.search(rf"\$\{{{name}:\?", COMPOSE.read_text(encoding="utf-8"))}
    secrets = {"RASA_TOKEN", "CUSTOMER_TOKEN_SECRET", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD"}
    assert secrets <= required
    assert all(listed[name] == "" for name in required), "the template leaves every required secret empty"


def test_every_variable_the_rasa_files_name_is_provided(compose: dict, k8s: dict) -> None:
    names = set()
    for name in ("endpoints.yml", "credentials.yml"):
        names |= _variables((DEPLOY / "compose" / name).read_text(encoding="utf-8"))
    for service in ("rasa-1", "rasa-2"):
        assert names <= set(compose["services"][service]["environment"]), service
    k8s_env = set(k8s[("ConfigMap", "bot-settings")]["data"]) | set(k8s[("Secret", "bot-secrets")]["stringData"])
    assert names <= k8s_env
    # what bot/cluster/launcher.py gives every process, the deployed parts get too
    for name in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "RASA_EVENTS_QUEUE", "TICKET_LOCK_LIFETIME", "RASA_URL"):
        assert name in compose["services"]["rasa-1"]["environment"] and name in k8s_env, name


def test_the_events_queue_is_the_one_the_consumer_reads(deployed_endpoints: dict, compose: dict, k8s: dict) -> None:
    [queue] = deployed_endpoints["event_broker"]["queues"]
    assert compose["services"]["analytics"]["environment"]["RASA_EVENTS_QUEUE"] == queue
    assert k8s[("ConfigMap", "bot-settings")]["data"]["RASA_EVENTS_QUEUE"] == queue
    assert k8s[("Deployment", "analytics")]["spec"]["replicas"] == 1
    assert k8s[("Deployment", "analytics")]["spec"]["strategy"]["type"] == "Recreate"


def test_the_console_uses_the_api_door(compose: dict, k8s: dict) -> None:
    assert compose["services"]["console"]["environment"]["RASA_URL"] == f"http://nginx:{API}"
    assert k8s[("ConfigMap", "bot-settings")]["data"]["RASA_URL"] == f"http://nginx:{API}"


# --- the image -------------------------------------------------------------------------


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.lower()] = version
    return pins


def test_the_image_is_rasas_at_the_locked_version_and_copies_what_exists() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    [base] = re.findall(r"^ARG RASA_IMAGE=(\S+)$", dockerfile, flags=re.M)
    pins = _lock_pins()
    assert base == f"rasa/rasa:{pins['rasa']}-full"
    left_out = re.search(r"grep -v -E '\^\(([^)]+)\)==", dockerfile)[1].split("|")
    assert set(left_out) <= set(pins) and "python-socketio" not in left_out
    assert pins["python-socketio"] == "5.9.0"
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.M):
        for source in sources.split():
            assert (PROJECT_ROOT / source).exists(), source


def _entrypoint_roles() -> dict[str, str]:
    text = (DEPLOY / "entrypoint.sh").read_text(encoding="utf-8")
    return dict(re.findall(r"^  ([a-z-]+)\)\n(.*?)\n    ;;", text, flags=re.M | re.S))


def test_the_roles_run_the_loopback_clusters_commands(compose: dict, k8s: dict) -> None:
    roles = _entrypoint_roles()
    for role, words in {
        "rasa-server": ["rasa run ", "--enable-api", '--auth-token "$RASA_TOKEN"', "/app/cluster/endpoints.yml",
                        "/app/cluster/credentials.yml", "/app/models/current.tar.gz"],
        "action-server": ["rasa run actions"],
        "migrate": ["ensure_database", "python -m bot db init"],
        "analytics": ["python -m bot analytics consume"],
        "console": ["python -m bot console serve"],
        "website": ["python -m bot website serve"],
    }.items():  # fmt: skip
        for word in words:
            assert word in roles[role], f"{role}: {word}"
    commands = {spec["command"][0] for spec in compose["services"].values() if "command" in spec and "build" in spec}
    assert commands == set(roles)
    k8s_roles = {
        container["args"][0]
        for (kind, _), doc in k8s.items()
        if kind in {"Deployment", "Job"}
        for container in doc["spec"]["template"]["spec"]["containers"]
        if "args" in container
    }
    assert k8s_roles == set(roles)


def test_the_rasa_servers_find_their_files_and_model(compose: dict, k8s: dict, layout: Layout) -> None:
    for service in ("rasa-1", "rasa-2"):
        mounts = {volume.split(":")[1] for volume in compose["services"][service]["volumes"]}
        assert {"/app/models", "/app/cluster/endpoints.yml", "/app/cluster/credentials.yml"} <= mounts
    pod = k8s[("Deployment", "rasa")]["spec"]["template"]["spec"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == ["/app/cluster"]
    assert layout.model.name == "current.tar.gz"


def test_kustomization_names_existing_files_and_leaves_the_secret_template_out() -> None:
    for path in K8S.rglob("kustomization.yaml"):
        resources = yaml.safe_load(path.read_text(encoding="utf-8"))["resources"]
        assert all((path.parent / name).exists() for name in resources), path
        assert "secret.example.yaml" not in resources


def test_kubernetes_objects_live_in_the_namespace_and_pods_run_unprivileged(k8s: dict) -> None:
    for (kind, name), doc in k8s.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, f"{kind}/{name}"
        if kind in {"Deployment", "Job"}:
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
                assert "requests" in container["resources"], name
                if kind == "Deployment" and name not in ("analytics", "recovery"):  # workers, no HTTP
                    assert "readinessProbe" in container and "livenessProbe" in container, name
    # the Secret is a template: every secret in it is empty or a CHANGE-ME placeholder
    for name, value in k8s[("Secret", "bot-secrets")]["stringData"].items():
        if re.search(r"PASSWORD|TOKEN|SECRET|KEY|_URL$", name) and value:
            assert "CHANGE-ME" in value, name
