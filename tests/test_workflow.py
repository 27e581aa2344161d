"""The GitHub workflow cannot run here, so check what it says: valid YAML, the README's commands only, tests on
every pull request, and the tested site (and only that) published to GitHub Pages from main."""

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "book.yml"


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_triggers_are_pull_requests_and_main():
    on = _workflow()["on"]
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]


def test_the_test_job_runs_make_test_and_nothing_else():
    steps = _workflow()["jobs"]["test"]["steps"]
    commands = [step["run"] for step in steps if "run" in step]
    assert commands and all(c.split()[:2] == ["make", "test"] for c in commands), commands
    assert _workflow()["jobs"]["test"]["timeout-minutes"] <= 90


def test_the_site_is_uploaded_from_the_tested_build_and_deployed_only_from_main():
    jobs = _workflow()["jobs"]
    upload = [s for s in jobs["test"]["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert len(upload) == 1 and upload[0]["with"]["path"] == "_build/html"
    assert "refs/heads/main" in upload[0]["if"]
    deploy = jobs["deploy"]
    assert deploy["needs"] == "test" and "refs/heads/main" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
