"""`testbed lab`'s pieces that need no root (docs/lab.md): the plan's names and
addresses, the checks before anything is made, `lab.json` read back as written, and
what the shaping summary says when the kernel has no netem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coordinator.cli import main
from coordinator.lab import make_plan, preflight, shaping
from coordinator.lab.sshd import without_title
from coordinator.lab.state import (
    HostRecord,
    LabState,
    QdiscKind,
    QdiscRecord,
    ShapingRecord,
    load_state,
)
from testbed.exit_codes import ExitCode, TestbedExit
from tests.lab_fixtures import skip_unless_lab_possible


def test_plan_names_every_kernel_object_after_the_lab_and_numbers_the_hosts() -> None:
    plan = make_plan(3, "/tmp/x", "198.18.0.0/24")
    assert plan.bridge == "tb-br0" and plan.bridge_address == "198.18.0.1"
    assert [h.name for h in plan.hosts] == ["host-1", "host-2", "host-3"]
    assert [h.namespace for h in plan.hosts] == ["tb-host-1", "tb-host-2", "tb-host-3"]
    assert [h.address for h in plan.hosts] == ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
    longest = make_plan(250, "/tmp/x", "10.0.0.0/16", lab_name="abcdef")
    assert max(len(h.veth) for h in longest.hosts) <= 15  # Linux: IFNAMSIZ - 1


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"hosts_count": 0}, "--hosts"),
        ({"hosts_count": 251}, "--hosts"),
        ({"hosts_count": 2, "subnet": "198.18.0.1/24"}, "--subnet"),  # host bits set
        ({"hosts_count": 2, "subnet": "2001:db8::/64"}, "IPv4"),
        ({"hosts_count": 3, "subnet": "198.18.0.0/30"}, "too few addresses"),
        ({"hosts_count": 2, "lab_name": "Lab"}, "--name"),
        ({"hosts_count": 2, "lab_name": "toolong1"}, "--name"),
    ],
)
def test_a_plan_that_cannot_be_made_is_a_usage_error(kwargs: dict, says: str) -> None:
    with pytest.raises(TestbedExit) as caught:
        make_plan(**kwargs)
    assert caught.value.code == ExitCode.USAGE and says in caught.value.message


def test_not_root_is_not_permitted_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TestbedExit) as caught:
        preflight.check_can_host_lab()
    assert caught.value.code == ExitCode.NOT_PERMITTED and "root" in caught.value.message
    assert main(["lab", "up", "--hosts", "2", "--dir", "/nonexistent/lab"]) == 14


def test_the_fixture_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        skip_unless_lab_possible()


def test_down_as_another_user_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _state(tmp_path).save()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "down", "--dir", str(tmp_path)]) == ExitCode.NOT_PERMITTED
    assert load_state(tmp_path) is not None  # kept: `down` as root removes it all


def test_a_missing_sshd_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight, "SSHD", "/nonexistent/sshd")
    monkeypatch.setattr(preflight.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(TestbedExit) as caught:
        preflight.check_can_host_lab()
    assert caught.value.code == ExitCode.DEPENDENCY_MISSING
    assert "openssh-server" in caught.value.message


def _state(lab_dir: Path) -> LabState:
    return LabState(
        lab_name="tb", token="abc", dir=str(lab_dir), created_at="now", subnet="198.18.0.0/24",
        bridge="tb-br0", bridge_address="198.18.0.1", client_key="k", known_hosts="kh",
        inventory="i", shaping=ShapingRecord(rate_mbit=10, rate_applied=True, summary="tbf"),
        hosts=[HostRecord(name="host-1", namespace="tb-host-1", veth="tb-h1",
                          address="198.18.0.2", dir="d", prefix="p", sshd_config="c",
                          sshd={"pid": 1, "started_at": 2.0, "cmdline": ["sshd"]},
                          qdiscs=[QdiscRecord("tb-h1", None, [QdiscKind.TBF])])],
    )  # fmt: skip


def test_lab_json_reads_back_as_written(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.save()
    assert load_state(tmp_path) == state
    assert load_state(tmp_path / "elsewhere") is None
    (tmp_path / "lab.json").write_text("{not json")
    with pytest.raises(TestbedExit, match="cannot be read"):
        load_state(tmp_path)


def test_without_netem_the_delay_is_said_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shaping, "detect_netem", lambda lab_name: False)
    record = shaping.plan_shaping(100, 5, "tb")
    assert record.rate_applied and not record.delay_applied and record.netem_available is False
    assert "tbf 100 Mbit/s" in record.summary and "delay 5 ms NOT applied" in record.summary
    monkeypatch.setattr(shaping, "detect_netem", lambda lab_name: True)
    assert shaping.plan_shaping(None, 5, "tb").summary == "netem delay 5 ms each way"
    assert shaping.plan_shaping(None, None, "tb").summary == "none"


def test_tbf_bucket_holds_at_least_ten_ms_of_traffic() -> None:
    args = shaping._tbf_args(1000)
    assert args[args.index("rate") + 1] == "1000000kbit"
    assert int(args[args.index("burst") + 1]) == 1000e6 / 8 * 0.01
    assert int(shaping._tbf_args(1)[4]) == 32 * 1024


def test_sshd_identity_ignores_its_changing_listener_title() -> None:
    listening = ("sshd:", "/usr/sbin/sshd", "-f", "c", "[listener]", "0", "of", "9", "startups")
    connecting = (*listening[:5], "1", *listening[6:])
    started = ("/usr/sbin/sshd", "-f", "c")  # read before sshd set its title
    assert without_title(listening) == without_title(connecting) == without_title(started)
    assert without_title(started) == started
    assert without_title(("sleep", "60")) == ("sleep", "60")


def test_sshd_identity_is_the_same_for_a_path_with_spaces_before_and_after_its_title() -> None:
    started = ("/usr/sbin/sshd", "-f", "/tmp/my lab/sshd_config")
    titled = ("sshd:", "/usr/sbin/sshd", "-f", "/tmp/my", "lab/sshd_config", "[listener]",
              "0", "of", "10-100", "startups")  # fmt: skip
    assert without_title(started) == without_title(titled)
