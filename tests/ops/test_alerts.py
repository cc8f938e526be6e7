"""The alert rules (deploy/prometheus/alerts.yml) are valid, and each one fires on the
series it watches and only then (promtool's rule unit tests, alerts_test.yml)."""

from __future__ import annotations

import subprocess

import yaml

from tests.support.harness import ROOT
from tests.support.tools import require_tool

RULES = ROOT / "deploy" / "prometheus"
ALERTS = {"MentorshipWorkerDown", "MentorshipNoWorker", "MentorshipRelayBacklogOld",
          "MentorshipWebhookFailures", "MentorshipProgrammeMetricStale",
          "MentorshipSlaOverdueRateAboveGoal"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], cwd=RULES, capture_output=True,
                          text=True, timeout=120)


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_every_alert_fires_on_its_series_in_promtools_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    defined = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"]
             if check["exp_alerts"]}
    assert ALERTS <= defined  # worker down, relay backlog age, webhook failures, stale, SLA
    assert fired == defined  # every alert is shown firing at least once
