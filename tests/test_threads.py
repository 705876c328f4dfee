"""threads: the thread count from the setting, the affinity, the cgroup quota and the idle CPUs."""
import threading

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from clead_edu import threads as T

# /proc/stat of two CPUs, then 100 ticks later on each: cpu0 all idle (90 idle + 10 iowait),
# cpu1 busy for 75 ticks (50 user, 20 system, 5 steal) and idle for 25.
STAT_BEFORE = """cpu  2000 0 600 3000 100 0 0 50 0 0
cpu0 1000 0 300 1500 50 0 0 25 0 0
cpu1 1000 0 300 1500 50 0 0 25 0 0
intr 12345
"""
STAT_AFTER = """cpu  2050 0 620 3115 110 0 0 55 0 0
cpu0 1000 0 300 1590 60 0 0 25 0 0
cpu1 1050 0 320 1525 50 0 0 30 0 0
intr 12399
"""


@pytest.fixture
def no_env(monkeypatch):
    for var in (T.ENV, "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)


def cgroup_v2(tmp_path, files: dict, path="/user.slice/job") -> dict:
    """A fake cgroup v2 tree: `files` maps a cgroup path to its cpu.max text."""
    for where, text in files.items():
        d = tmp_path / "cg" / where.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(text)
    (tmp_path / "self_cgroup").write_text(f"0::{path}\n")
    return {"cgroup_root": tmp_path / "cg", "proc_cgroup": tmp_path / "self_cgroup"}


def test_user_setting(no_env, monkeypatch):
    """The argument wins over CLEAD_EDU_THREADS, which wins over OMP_NUM_THREADS; 'auto' = none."""
    assert T.user_setting() is None and T.user_setting("auto") is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")
    assert T.user_setting() == 3
    monkeypatch.setenv(T.ENV, "2")
    assert T.user_setting() == 2 and T.user_setting(5) == 5
    monkeypatch.setenv(T.ENV, "auto")
    assert T.user_setting() is None


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_wrong_setting_is_a_clear_error(no_env, monkeypatch, value):
    """A wrong CLEAD_EDU_THREADS names the variable, the value and what is accepted."""
    monkeypatch.setenv(T.ENV, value)
    with pytest.raises(ValueError, match=rf"CLEAD_EDU_THREADS must be a whole number .* got '{value}'"):
        T.set_threads(verbose=False)
    with pytest.raises(ValueError, match="threads must be"):
        T.user_setting(value)


def test_parse_quota():
    """cgroup v2 'quota period' / 'max period', v1 quota and period files, in CPUs."""
    assert T.parse_quota("max 100000\n") is None
    assert T.parse_quota("50000 100000\n") == 0.5
    assert T.parse_quota("-1\n", "100000\n") is None
    assert T.parse_quota("150000\n", "100000\n") == 1.5


def test_cgroup_v2_smallest_quota_up_the_tree(tmp_path):
    """The quota of the process's own group or of any parent limits it: the smallest counts."""
    paths = cgroup_v2(tmp_path, {"/": "max 100000", "/user.slice": "150000 100000",
                                 "/user.slice/job": "max 100000"})
    assert T.cgroup_quota(paths["cgroup_root"], paths["proc_cgroup"]) == 1.5
    paths = cgroup_v2(tmp_path, {"/user.slice/job": "50000 100000"})
    assert T.cgroup_quota(paths["cgroup_root"], paths["proc_cgroup"]) == 0.5


def test_cgroup_v1_and_no_cgroup(tmp_path):
    """v1: cpu.cfs_quota_us / cpu.cfs_period_us in the 'cpu,cpuacct' mount; none -> None."""
    d = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("200000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "self").write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert T.cgroup_quota(tmp_path / "cg", tmp_path / "self") == 2.0
    (d / "cpu.cfs_quota_us").write_text("-1\n")
    assert T.cgroup_quota(tmp_path / "cg", tmp_path / "self") is None
    assert T.cgroup_quota(tmp_path / "cg", tmp_path / "missing") is None


def test_idle_cpus_from_proc_stat():
    """Idle share per allowed CPU over the interval, summed: cpu0 1.0, cpu1 0.25."""
    assert T.idle_cpus(STAT_BEFORE, STAT_AFTER, {0, 1}) == pytest.approx(1.25)
    assert T.idle_cpus(STAT_BEFORE, STAT_AFTER, {1}) == pytest.approx(0.25)
    assert T.idle_cpus(STAT_BEFORE, STAT_BEFORE, {0, 1}) is None      # no time passed
    assert T.idle_cpus(STAT_BEFORE, STAT_AFTER, {7}) is None           # not in the file


def test_free_cpus_reads_the_file_twice(tmp_path):
    """free_cpus reads /proc/stat, waits, reads it again (here rewritten in between)."""
    stat = tmp_path / "stat"
    stat.write_text(STAT_BEFORE)
    timer = threading.Timer(0.05, stat.write_text, [STAT_AFTER])
    timer.start()
    assert T.free_cpus({0, 1}, stat, wait=0.5) == pytest.approx(1.25)
    timer.join()
    assert T.free_cpus({0}, tmp_path / "missing") is None


@pytest.mark.parametrize("binding, setting, cpus, cpu_max, free, expected", [
    ("setting", 1, {0, 1, 2, 3}, "300000 100000", 3.9, 1),
    ("affinity", None, {2, 3}, "300000 100000", 2.0, 2),
    ("cgroup quota", None, {0, 1, 2, 3}, "150000 100000", 3.9, 1),
    ("free CPUs", None, {0, 1, 2, 3}, "max 100000", 1.25, 1),
    ("setting", 3, {0, 1, 2, 3}, "max 100000", 1.25, 3),      # the setting replaces the free CPUs
])
def test_each_limit_can_bind(tmp_path, no_env, monkeypatch, binding, setting, cpus, cpu_max, free, expected):
    """Fake cgroup files, a fake affinity and a fake count of idle CPUs: the smallest limit
    decides, and the note names it."""
    monkeypatch.setattr(T, "free_cpus", lambda c, *a, **k: free)
    found = T.limits(setting, cpus=cpus, **cgroup_v2(tmp_path, {"/user.slice/job": cpu_max}))
    n, why = T.choose_threads(found=found)
    assert n == expected and why.startswith(T.WHY[binding].split(" (")[0]), (found, why)
    assert found["free CPUs"] == (free if setting is None else None)


def test_free_cpu_rounding():
    """A CPU counts when 80% idle; a quota is rounded down; never fewer than 1 thread."""
    base = {"setting": None, "affinity": 8, "cgroup quota": None}
    assert T.choose_threads(found=base | {"free CPUs": 1.8})[0] == 2
    assert T.choose_threads(found=base | {"free CPUs": 1.7})[0] == 1
    assert T.choose_threads(found=base | {"free CPUs": 0.0})[0] == 1
    assert T.choose_threads(found=base | {"free CPUs": None, "cgroup quota": 0.5})[0] == 1
    assert T.choose_threads(found=base | {"free CPUs": None, "cgroup quota": 2.9})[0] == 2


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    with threadpool_limits(limits=None):   # restores every pool's count on leaving
        yield
    torch.set_num_threads(before)


@pytest.mark.skipif(len(T.allowed_cpus()) < 2, reason="needs 2 CPUs")
def test_set_threads_applies_to_torch_and_the_pools(restore_threads, no_env, capsys):
    """The chosen count reaches torch and every BLAS/OpenMP pool; one note is printed."""
    for n in (2, 1):
        assert T.set_threads(n) == n
        assert torch.get_num_threads() == n
        assert {p["num_threads"] for p in threadpool_info()} == {n}
    assert capsys.readouterr().out.count("[clead_edu] using") == 2


@pytest.mark.skipif(len(T.allowed_cpus()) < 2, reason="needs 2 CPUs")
def test_setup_and_main_job_size_the_threads(restore_threads, no_env, monkeypatch, tmp_path, capsys):
    """ce.setup applies its `threads`; the main job stops with the variable named when it is wrong."""
    import clead_edu as ce
    from clead_edu.__main__ import main
    ce.setup("quick", "digits", run_dir=tmp_path / "nb", data_root=tmp_path / "data", threads=2)
    assert torch.get_num_threads() == 2 and "2 CPU threads: limited by your setting" in capsys.readouterr().out
    monkeypatch.setenv(T.ENV, "many")
    assert main(["run", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "CLEAD_EDU_THREADS must be a whole number" in capsys.readouterr().err
