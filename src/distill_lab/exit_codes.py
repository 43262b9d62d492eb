"""The CLI's exit codes, and the exceptions that end a stage with one of them (contract).

=====  ==================================================================================
code   meaning
=====  ==================================================================================
0      the stage finished and produced everything it was asked for
1      an unexpected error (a bug): a traceback is printed
2      the config or the command line is invalid, or a free start-up check refused it
       (key, model, base URL): nothing was sent, nothing was written
3      the stage ran but failed: a fatal API error stopped it (nothing saved as rows), or it
       ended with unresolved failures (rows saved; re-running the same command retries them)
4      a spend limit stopped it early (the API's limit or ``generate.max_cost_usd``): the rows
       bought are saved; re-running with a higher cap resumes
130    interrupted (Ctrl-C / SIGINT): rows already received are saved; re-run to resume
=====  ==================================================================================

Every non-zero exit but 1 prints exactly one line ``distill-lab <stage>: <cause>; <fix>`` on stderr.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_CONFIG = 2
EXIT_FAILED = 3
EXIT_STOPPED = 4
EXIT_INTERRUPTED = 130


class StageStop(RuntimeError):
    """An expected end of a stage that is not success; ``exit_code`` says which (see the table)."""

    exit_code = EXIT_FAILED


class GenerationFailed(StageStop):
    """A fatal API error (refused key, unknown model, wrong URL, a request the API refuses every time,
    nothing listening at the base URL) stopped the run: no dataset and no manifest were written."""

    exit_code = EXIT_FAILED


class StageIncomplete(StageStop):
    """The stage finished and wrote its artifacts, but not all of them (unresolved failures)."""

    exit_code = EXIT_FAILED
