"""The child process of test_hostile.py: runs the cases of bad_calls.py (the one table of bad
calls, which test_bad_input.py runs in-process too).

`python tests/support/hostile_cases.py [first]`, with tests/ on PYTHONPATH, runs the cases from
index `first` on, printing one JSON line before each case ({"start": i}) and one after it (what
it raised or that it returned), then {"done": true}. A crash or hang therefore loses nothing but the case that caused it: the parent
(test_hostile.py) names that case and starts a new child at the next one.
"""
import json
import sys
from typing import List

from support import bad_calls


def main(argv: List[str]) -> int:
    cases = bad_calls.all_cases()
    first = int(argv[1]) if len(argv) > 1 else 0
    for i in range(first, len(cases)):
        print(json.dumps({"start": i, "name": cases[i].name}), flush=True)
        print(json.dumps({"index": i, **bad_calls.run(cases[i])}), flush=True)
    print(json.dumps({"done": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
