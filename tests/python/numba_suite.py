"""Runs numba-cuda's own test modules (listed in numba-modules.txt, or given as arguments) with
pytest and prints one line per module: `MODULE passed P failed F skipped S error E`, then
`total passed P failed F skipped S error E`. Exits 0 whatever the counts (a report: the Rust test
compares the total with numba-floor.txt), non-zero only when pytest itself cannot run.

The numba-cuda wheel ships its tests without the repository's conftest.py, so the fixture and
option its test base class asks for are defined here."""
import collections
import os
import sys
import warnings

import pytest

warnings.simplefilter("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


class Tally:
    def __init__(self):
        self.counts = collections.OrderedDict()

    def pytest_addoption(self, parser):
        parser.addoption("--dump-failed-filechecks", action="store_true")

    @pytest.fixture(scope="class")
    def initialize_from_pytest_config(self, request):
        request.cls._dump_failed_filechecks = False

    def pytest_runtest_logreport(self, report):
        mod = os.path.basename(str(report.fspath)).removesuffix(".py")
        c = self.counts.setdefault(mod, collections.Counter())
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            c[report.outcome if report.when == "call" or report.outcome == "skipped" else "error"] += 1
        elif report.when == "teardown" and report.outcome == "failed":
            c["error"] += 1


def main():
    modules = sys.argv[1:]
    if not modules:
        with open(os.path.join(HERE, "numba-modules.txt")) as f:
            modules = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    import numba.cuda.tests as tests

    base = os.path.dirname(tests.__file__)
    paths = [os.path.join(base, *m.split(".")) + ".py" for m in modules]
    tally = Tally()
    args = ["-q", "-p", "no:cacheprovider", "--tb=line", "--import-mode=importlib",
            "--continue-on-collection-errors", "--rootdir", base, *paths]
    rc = pytest.main(args, plugins=[tally])
    if rc not in (0, 1):  # 1: some tests failed (reported below)
        print(f"pytest could not run the modules (exit {rc})")
        sys.exit(2)
    total = collections.Counter()
    for m in modules:
        c = tally.counts.get(m.rsplit(".", 1)[-1], collections.Counter())
        total.update(c)
        print(f"{m} passed {c['passed']} failed {c['failed']} skipped {c['skipped']} error {c['error']}")
    print(f"total passed {total['passed']} failed {total['failed']} skipped {total['skipped']} error {total['error']}")


main()
