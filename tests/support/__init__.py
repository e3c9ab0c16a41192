"""What the tests share, so that tests/ holds tests (imported as `support.<module>`: pytest puts
tests/ on sys.path, as the folder of conftest.py and of the test files).

  helpers.py          random inputs for the op, its float64 truths, and the tolerances the
                      tests hold every backend to (stated once, with why)
  backends.py         the op's backends (CPU, CUDA and its two paths, the emulated CUDA
                      kernels) as small adapters, and the one table of shapes they run
  compare.py          comparing results that may hold NaN and Inf
  notebook_models.py  the course notebook's LMModel1-4, transcribed: the contract
  book_models.py      the printed book's LMModel1-4 (its layer names)
  rnn_cases.py        random configurations of rnnfast.RNN and torch.nn.RNN side by side
  fuzz_inputs.py      hypothesis strategies for the op's inputs
  bad_calls.py        the one table of bad and edge-case calls
  hostile_cases.py    the child process that runs bad_calls.py's table (test_hostile.py)
  cli_runs.py         running the real rnnfast command in a subprocess
  ddp_worker.py       run by test_ddp.py under torchrun
  markdown_blocks.py  the fenced code blocks of markdown files and their skip markers
"""
