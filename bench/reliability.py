"""Long mode of the property-based reliability suite (tests/test_reliability.py).

Runs every property of the test module with many random examples (hypothesis, generation
only: failures are recorded with their drawn case, which is its own reproducer, rather than
shrunk) and prints a table: property, examples run, failures, seconds; then the distinct
failure kinds, each with its first reproducer.

Run from the repository root::

    python bench/reliability.py                    # long mode, ~10 minutes on 2 cores
    python bench/reliability.py --minutes 2        # a shorter total budget
    python bench/reliability.py -k hmm --examples 200

The total budget is shared between the properties in proportion to their long-mode example
counts (after setting aside ~2 minutes for the hostile-lengths probes, one interpreter each);
a property stops at its example count or its share of the budget, whichever comes first (so
the examples run are reported, not assumed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")


class _OutOfTime(BaseException):
    """Raised inside a hypothesis example once the property's time share is used up."""


def load_suite(log_scale=None):
    os.environ["EMX_HYPOTHESIS"] = "long"
    os.environ.pop("EMX_HYPOTHESIS_EXAMPLES", None)
    if log_scale is not None:
        os.environ["EMX_HYPOTHESIS_LOG_SCALE"] = str(log_scale)
    sys.path.insert(0, TESTS)
    spec = importlib.util.spec_from_file_location(
        "test_reliability", os.path.join(TESTS, "test_reliability.py")
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def properties(mod):
    """(name, function of the drawn keyword arguments, strategies, long-mode examples)."""
    out = []
    for name in dir(mod):
        test = getattr(mod, name)
        if not (name.startswith("test_") and hasattr(test, "prop")):
            continue
        args, strategies = test.strategies
        assert not args, "properties take keyword strategies"
        n_long = test.max_examples
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        if marks:
            argname, values = marks[0].args
            for v in values:
                out.append((f"{name}[{v}]", _bind(test.prop, argname, v), strategies, n_long))
        else:
            out.append((name, test.prop, strategies, n_long))
    return out


def _bind(f, argname, value):
    return lambda **kw: f(**{argname: value}, **kw)


def _kind(exc: BaseException) -> str:
    """A short key grouping failures of the same kind (numbers stripped)."""
    msg = str(exc).split("\n")[0]
    msg = re.sub(r"[-+]?\d[\d.e+-]*", "#", msg)
    msg = re.sub(r"\(/[^)]*\)", "", msg)
    return f"{type(exc).__name__}: {msg[:110]}"


def run_property(name, prop, strategies, max_examples, seconds):
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.reporting import with_reporter

    state = {"n": 0, "failures": []}
    stop = time.monotonic() + seconds

    @settings(max_examples=max_examples, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries(strategies))
    def body(kw):
        if time.monotonic() > stop:
            raise _OutOfTime
        state["n"] += 1
        try:
            prop(**kw)
        except Exception as exc:  # recorded, not raised: the search goes on
            state["failures"].append((kw, exc, traceback.format_exc(limit=-3)))

    t0 = time.monotonic()
    try:
        with with_reporter(lambda *a, **k: None):  # no "reproduce with @seed" for a stop
            body()
    except _OutOfTime:
        pass
    return state["n"], state["failures"], time.monotonic() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="total time budget (default 10)")
    parser.add_argument("--examples", type=int, default=None,
                        help="examples per property (default: the suite's long mode)")
    parser.add_argument("-k", default=None,
                        help="only properties whose name contains one of these "
                        "(comma-separated)")
    parser.add_argument("--skip", default=None,
                        help="leave out properties whose name contains one of these")
    parser.add_argument("--log-scale", type=float, default=None,
                        help="data scales from 1e-L to 1eL (default: the suite's 3)")
    parser.add_argument("--all", action="store_true",
                        help="print every failing case, not only the first of each kind")
    parser.add_argument("--tracebacks", action="store_true",
                        help="print the traceback of the first failure of each kind")
    args = parser.parse_args(argv)

    mod = load_suite(args.log_scale)
    def matches(name, spec):
        return any(part and part in name for part in spec.split(","))

    props = [p for p in properties(mod)
             if (args.k is None or matches(p[0], args.k))
             and not (args.skip and matches(p[0], args.skip))]
    want_hostile = (args.k is None or matches("hostile_lengths", args.k)) and not (
        args.skip and matches("hostile_lengths", args.skip))
    if not props and not want_hostile:
        print("no property matches", file=sys.stderr)
        return 2
    weights = [args.examples or p[3] for p in props]
    total_budget = 60.0 * args.minutes
    if want_hostile and props:  # ~2.5 s per subprocess probe, run after the properties
        n_probes = len(mod.HOSTILE_NAMES[0]) * len(mod.HOSTILE_NAMES[1])
        total_budget = max(total_budget - 2.5 * n_probes, 0.25 * total_budget)
    warnings.simplefilter("ignore")  # the properties record the warnings they care about

    sys.path.insert(0, HERE)
    from _common import describe_machine, format_header, format_row

    for line in describe_machine("hypothesis (long mode of tests/test_reliability.py)"):
        print(line)
    print(f"budget       : {args.minutes:g} minutes in total; data scales 1e-{mod.LOG_SCALE:g} "
          f"to 1e{mod.LOG_SCALE:g}\n")
    cols = [("property", 52, "s"), ("examples", 9, "d"), ("failures", 9, "d"),
            ("seconds", 8, ".1f")]
    print(format_header(cols))
    kinds: dict[tuple[str, str], list] = {}
    tot_n = tot_f = 0
    t_start = time.monotonic()
    spent = 0.0
    for i, (name, prop, strategies, n_long) in enumerate(props):
        remaining = total_budget - (time.monotonic() - t_start)
        share = remaining * weights[i] / sum(weights[i:])
        n, failures, secs = run_property(
            name, prop, strategies, args.examples or n_long, max(share, 1.0)
        )
        spent += secs
        tot_n += n
        tot_f += len(failures)
        print(format_row(cols, [name, n, len(failures), secs]), flush=True)
        for kw, exc, tb in failures:
            kinds.setdefault((name, _kind(exc)), []).append((kw, exc, tb))
    if want_hostile:
        # The subprocess-isolated crash test, one interpreter per (hostile lengths, method)
        # so that a crash does not hide the probes after it.
        t0 = time.monotonic()
        n = bad = 0
        for lname in mod.HOSTILE_NAMES[0]:
            for cname in mod.HOSTILE_NAMES[1]:
                code, results, last, _ = mod.run_hostile_lengths(only=(lname, cname))
                wrong = [r for r in results if not mod.hostile_result_ok(r)]
                if code != 0:
                    wrong.append(f"{cname} | {lname} | interpreter died (exit {code})")
                n += 1
                bad += bool(wrong)
                for r in wrong:
                    kinds.setdefault(("hostile lengths", _kind(RuntimeError(
                        r.split("|", 2)[-1]))), []).append(({"probe": r}, RuntimeError(r), ""))
        tot_n += n
        tot_f += bad
        print(format_row(cols, ["hostile lengths (subprocess per probe)", n, bad,
                                time.monotonic() - t0]))
    print(format_row(cols, ["total", tot_n, tot_f, time.monotonic() - t_start]))
    if kinds:
        print("\nfailure kinds (count, first reproducer):")
        for (name, kind), items in kinds.items():
            kw, exc, tb = items[0]
            print(f"\n[{name}] x{len(items)}  {kind}")
            print(f"    reproducer: {kw!r}")
            print("    message   : " + str(exc).split("\n")[0][:300])
            if args.all:
                for kw2, _, _ in items[1:]:
                    print(f"    also      : {kw2!r}")
            if args.tracebacks:
                print(textwrap_indent(tb))
    return 1 if tot_f else 0


def textwrap_indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
