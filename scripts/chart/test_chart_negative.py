"""Negative tests (make test-chart): every unsafe combination and every kind
of schema violation must fail to render, with the message the user needs.
Each case starts from a base that renders (checked too), adds one bad change,
and asserts Helm's error contains the expected text.
"""

from __future__ import annotations

from typing import Any

import pytest

import chartlib

pytestmark = pytest.mark.chart

SCHEMA = "values don't meet the specifications of the schema"

POSTGRES = {"database": {"type": "postgres"}, "postgres": {"external": {"host": "db.example.com", "existingSecret": "userapi-db"}}}
CNPG = {"database": {"type": "postgres"}, "postgres": {"cloudnativepg": {"enabled": True}}}
SQLITE: dict[str, Any] = {}

# (name, base, bad change, expected substrings)
CASES: list[tuple[str, dict, dict, list[str]]] = [
    # Unsafe combinations (templates/validate.yaml).
    ("sqlite with 2 replicas", SQLITE, {"replicaCount": 2},
     ["database.type=sqlite runs exactly one pod, but replicaCount is 2"]),
    ("sqlite with HPA", SQLITE, {"autoscaling": {"enabled": True}},
     ["autoscaling.enabled=true is refused with database.type=sqlite"]),
    ("sqlite on ReadWriteMany (EFS)", SQLITE, {"persistence": {"accessModes": ["ReadWriteMany"]}},
     ["SQLite's file locking is not safe on shared network filesystems such as EFS or NFS"]),
    ("sqlite with a canary Rollout", SQLITE, {"rollout": {"enabled": True}},
     ["rollout.enabled=true is refused with database.type=sqlite"]),
    ("sqlite with migration hook", SQLITE, {"migrations": {"mode": "hook"}},
     ["migrations.mode=hook needs database.type=postgres"]),
    ("postgres without a source", {"database": {"type": "postgres"}}, {},
     ["needs exactly one of postgres.external.url, postgres.external.host or postgres.cloudnativepg.enabled=true"]),
    ("postgres with two sources", POSTGRES, {"postgres": {"cloudnativepg": {"enabled": True}}},
     ["needs exactly one of postgres.external.url"]),
    ("external postgres without password Secret", POSTGRES, {"postgres": {"external": {"existingSecret": ""}}},
     ["postgres.external.existingSecret is required"]),
    ("password in the URL", POSTGRES,
     {"postgres": {"external": {"host": "", "url": "postgres://userapi:hunter2@db.example.com:5432/userapi"}}},
     ["postgres.external.url must not contain a password"]),
    ("sslmode in the URL", POSTGRES,
     {"postgres": {"external": {"host": "", "url": "postgres://userapi@db.example.com/userapi?sslmode=disable"}}},
     ["must not set sslmode; use postgres.tls.mode"]),
    ("CA without verify-full", POSTGRES, {"postgres": {"tls": {"mode": "require", "caSecret": "ca"}}},
     ["postgres.tls.caSecret is only used with postgres.tls.mode=verify-full (mode is require)"]),
    ("cloudnativepg with migration hook", CNPG, {"migrations": {"mode": "hook"}},
     ["migrations.mode=hook is refused with postgres.cloudnativepg.enabled=true"]),
    ("grace period shorter than drain + timeout", SQLITE, {"terminationGracePeriodSeconds": 25},
     ["terminationGracePeriodSeconds (25) must be greater than shutdown.drainDelaySeconds + shutdown.timeoutSeconds (5 + 20 = 25)"]),
    ("grace period too short after raising the timeout", SQLITE,
     {"terminationGracePeriodSeconds": 40, "shutdown": {"timeoutSeconds": 60}},
     ["terminationGracePeriodSeconds (40) must be greater than shutdown.drainDelaySeconds + shutdown.timeoutSeconds (5 + 60 = 65)"]),
    ("extraEnv overriding the shutdown timeout", SQLITE, {"extraEnv": [{"name": "SHUTDOWN_TIMEOUT", "value": "90s"}]},
     ["extraEnv sets SHUTDOWN_TIMEOUT, which the chart sets itself"]),
    ("dotenv overriding the port", SQLITE, {"dotenv": {"HTTP_PORT": "9090"}},
     ["dotenv sets HTTP_PORT, which the chart sets itself"]),
    ("HPA min above max", POSTGRES, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
     ["autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (3)"]),
    ("ServiceMonitor without metrics", SQLITE, {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
     ["metrics.serviceMonitor.enabled=true needs metrics.enabled=true"]),
    ("Rollout without metrics", POSTGRES, {"rollout": {"enabled": True}, "metrics": {"enabled": False}},
     ["rollout.enabled=true needs metrics.enabled=true"]),
    ("HTTPRoute without a Gateway", SQLITE, {"httpRoute": {"enabled": True}},
     ["httpRoute.enabled=true needs httpRoute.parentRefs"]),
    ("ALB without a certificate", SQLITE, {"ingress": {"enabled": True, "preset": "alb"}},
     ["ingress.preset=alb needs ingress.alb.certificateArn or ingress.tls hosts"]),
    ("registry Secret without password", SQLITE, {"registryCredentials": {"create": True, "username": "bot"}},
     ["registryCredentials.create=true needs registryCredentials.username and registryCredentials.password"]),
    # Schema violations (values.schema.json).
    ("unknown top-level key (typo)", SQLITE, {"replicaCont": 2},
     [SCHEMA, "additional properties 'replicaCont' not allowed"]),
    ("chart-owned key in config", SQLITE, {"config": {"shutdown": {"timeout": "60s"}}},
     [SCHEMA, "at '/config': additional properties 'shutdown' not allowed"]),
    ("database URL in config", SQLITE, {"config": {"database": {"url": "sqlite:/tmp/x"}}},
     [SCHEMA, "at '/config/database': additional properties 'url' not allowed"]),
    ("typo in a config key", SQLITE, {"config": {"log": {"levle": "debug"}}},
     [SCHEMA, "at '/config/log': additional properties 'levle' not allowed"]),
    ("bad log level", SQLITE, {"config": {"log": {"level": "verbose"}}},
     [SCHEMA, "at '/config/log/level': value must be one of"]),
    ("bad duration in config", SQLITE, {"config": {"http": {"idle_timeout": "1 hour"}}},
     [SCHEMA, "/config/http/idle_timeout"]),
    ("unknown storage type", SQLITE, {"database": {"type": "mysql"}},
     [SCHEMA, "at '/database/type': value must be one of 'sqlite', 'postgres'"]),
    ("negative replicas", SQLITE, {"replicaCount": -1},
     [SCHEMA, "at '/replicaCount': minimum: got -1, want 0"]),
    ("privileged port", SQLITE, {"containerPort": 80},
     [SCHEMA, "at '/containerPort': minimum: got 80, want 1,024"]),
    ("shutdown timeout as a string", SQLITE, {"shutdown": {"timeoutSeconds": "20s"}},
     [SCHEMA, "at '/shutdown/timeoutSeconds': got string, want integer"]),
    ("shutdown timeout too long", SQLITE, {"shutdown": {"timeoutSeconds": 601}},
     [SCHEMA, "at '/shutdown/timeoutSeconds': maximum: got 601, want 600"]),
    ("bad TLS mode", POSTGRES, {"postgres": {"tls": {"mode": "prefer"}}},
     [SCHEMA, "at '/postgres/tls/mode': value must be one of 'disable', 'require', 'verify-full'"]),
    ("bad image digest", SQLITE, {"image": {"digest": "sha1:abc"}},
     [SCHEMA, "at '/image/digest'", "does not match pattern"]),
    ("unknown ingress preset", SQLITE, {"ingress": {"preset": "haproxy"}},
     [SCHEMA, "at '/ingress/preset': value must be one of 'none', 'traefik', 'nginx', 'alb'"]),
    ("ExternalName service", SQLITE, {"service": {"type": "ExternalName"}},
     [SCHEMA, "at '/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"]),
    ("lower-case dotenv key", SQLITE, {"dotenv": {"log_level": "debug"}},
     [SCHEMA, "'log_level' does not match pattern '^[A-Z][A-Z0-9_]*$'"]),
    ("dotenv value with a line break", SQLITE, {"dotenv": {"LOG_LEVEL": "debug\nHTTP_PORT=1"}},
     [SCHEMA, "/dotenv/LOG_LEVEL"]),
    ("bad volume size", SQLITE, {"persistence": {"size": "1GB"}},
     [SCHEMA, "at '/persistence/size'", "does not match pattern"]),
    ("CPU target above 100%", POSTGRES, {"autoscaling": {"targetCPUUtilizationPercentage": 150}},
     [SCHEMA, "at '/autoscaling/targetCPUUtilizationPercentage': maximum: got 150, want 100"]),
    ("unknown probe field", SQLITE, {"probes": {"readiness": {"initialDelay": 5}}},
     [SCHEMA, "at '/probes/readiness': additional properties 'initialDelay' not allowed"]),
    ("nodePort out of range", SQLITE, {"service": {"type": "NodePort", "nodePort": 8080}},
     [SCHEMA, "at '/service/nodePort': minimum: got 8,080, want 30,000"]),
]


BASES = {"sqlite": SQLITE, "postgres": POSTGRES, "cloudnativepg": CNPG}


@pytest.mark.parametrize("base", BASES)
def test_base_renders(base):
    assert chartlib.objects(chartlib.render(BASES[base]))


@pytest.mark.parametrize("base, bad, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused(base, bad, expected):
    with pytest.raises(chartlib.RenderError) as refused:
        chartlib.render(chartlib.deep_merge(base, bad))
    missing = [e for e in expected if e not in str(refused.value)]
    assert not missing, f"refused, but the message lacks {missing!r}: {refused.value}"
