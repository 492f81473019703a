"""Record and replay: every LLM exchange of a run, in the run's SQLite store (table ``llm_calls``).

Each call has a *key* the conductor derives from where it is in the search (``r02/s01/write``,
``r02/s01/fix1``), never from the clock. That makes three things possible:

* resume: a killed run asks again with the same keys and gets the recorded replies without paying;
* replay: ``--agent replay:RUN_DIR`` answers every key from another run's store, deterministically;
* audit: prompt, reply, tokens, cost, latency and retry count of every call, linked to the candidate
  it produced.

Only what was sent and received is stored — never headers, so never an API key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from kernelwright.agents.llm.base import Completion, Provider
from kernelwright.agents.llm.pricing import PriceTable
from kernelwright.errors import UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_calls (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    call_key      TEXT NOT NULL,        -- position in the search: 'r02/s01/write', 'r02/s01/fix1'
    role          TEXT NOT NULL,        -- planner, writer, debugger, tuner
    provider      TEXT NOT NULL,        -- 'anthropic:MODEL', 'openai-compatible:URL:MODEL', 'replay:DIR'
    model         TEXT NOT NULL,        -- as the server reported it
    prompt_sha    TEXT NOT NULL,        -- sha256 of the request JSON
    request       TEXT NOT NULL,        -- JSON: system, messages, max_tokens, temperature
    reply         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL,                 -- NULL: the price table does not know the model
    seconds       REAL NOT NULL,
    attempts      INTEGER NOT NULL,     -- 1 + retries after 429/5xx/connection errors
    replayed      INTEGER NOT NULL DEFAULT 0,
    candidate_id  INTEGER REFERENCES candidates(id),
    created       REAL NOT NULL,
    UNIQUE (run_id, call_key)
);
"""


@dataclass(frozen=True)
class Exchange:
    key: str
    role: str
    completion: Completion
    cost_usd: float | None
    seconds: float
    cached: bool  # answered from this run's own record (resume), no call made


def request_json(system: str, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> str:
    return json.dumps({"system": system, "messages": messages, "max_tokens": max_tokens,
                       "temperature": temperature}, sort_keys=True)


class Journal:
    """The calls of one run. Reads and writes happen on the thread that owns the store; ``fetch`` (the
    network part) is safe to run on worker threads."""

    def __init__(self, connection: sqlite3.Connection, run_id: int, provider: Provider, prices: PriceTable):
        self.connection = connection
        self.run_id = run_id
        self.provider = provider
        self.prices = prices
        connection.executescript("BEGIN;" + SCHEMA + "COMMIT;")

    def recorded(self, key: str) -> Exchange | None:
        row = self.connection.execute(
            "SELECT role, model, reply, input_tokens, output_tokens, cost_usd, seconds, attempts FROM llm_calls "
            "WHERE run_id = ? AND call_key = ?", (self.run_id, key)).fetchone()
        if row is None:
            return None
        role, model, reply, tin, tout, cost, seconds, attempts = row
        return Exchange(key, role, Completion(reply, model, tin, tout, "recorded", attempts), cost, seconds, True)

    def fetch(self, key: str, role: str, system: str, messages: list[dict[str, str]], *, max_tokens: int,
              temperature: float) -> Exchange:
        """Ask the provider (thread-safe; nothing is written)."""
        started = time.monotonic()
        if isinstance(self.provider, ReplayProvider):
            completion, cost = self.provider.answer(key)
        else:
            completion = self.provider.complete(system, messages, max_tokens=max_tokens, temperature=temperature)
            cost = self.prices.cost(completion.model, completion.input_tokens, completion.output_tokens)
        return Exchange(key, role, completion, cost, time.monotonic() - started, False)

    def save(self, exchange: Exchange, system: str, messages: list[dict[str, str]], *, max_tokens: int,
             temperature: float) -> None:
        request = request_json(system, messages, max_tokens, temperature)
        c = exchange.completion
        self.connection.execute(
            "INSERT OR IGNORE INTO llm_calls(run_id, call_key, role, provider, model, prompt_sha, request, reply, "
            "input_tokens, output_tokens, cost_usd, seconds, attempts, replayed, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, exchange.key, exchange.role, self.provider.label, c.model,
             hashlib.sha256(request.encode()).hexdigest(), request, c.text, c.input_tokens, c.output_tokens,
             exchange.cost_usd, exchange.seconds, c.attempts, int(isinstance(self.provider, ReplayProvider)),
             time.time()))

    def link(self, key: str, candidate_id: int) -> None:
        self.connection.execute("UPDATE llm_calls SET candidate_id = ? WHERE run_id = ? AND call_key = ?",
                                (candidate_id, self.run_id, key))

    def totals(self) -> dict[str, float | int | None]:
        calls, tokens, dollars, unknown = self.connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(input_tokens + output_tokens), 0), COALESCE(SUM(cost_usd), 0), "
            "SUM(cost_usd IS NULL) FROM llm_calls WHERE run_id = ?", (self.run_id,)).fetchone()
        return {"calls": calls, "tokens": tokens, "dollars": dollars, "calls_without_price": unknown or 0}


class ReplayProvider:
    """``replay:RUN_DIR``: every key answered from the recorded run's store, with its recorded tokens and
    cost (so budgets stop where they stopped); a key the recording lacks is a usage error."""

    model = "replay"

    def __init__(self, run_dir: str | Path):
        path = Path(run_dir) / "run.sqlite"
        if not path.is_file():
            raise UsageError(f"{run_dir} holds no recorded run (no run.sqlite); pass a directory written by "
                             "`kernelwright optimize --out DIR`.")
        self.label = f"replay:{run_dir}"
        self.run_dir = Path(run_dir)
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT r.id, r.task, r.config FROM runs r WHERE EXISTS "
                              "(SELECT 1 FROM llm_calls c WHERE c.run_id = r.id) ORDER BY r.id DESC LIMIT 1").fetchone()
            if row is None:
                raise UsageError(f"The run in {run_dir} made no LLM calls, so there is nothing to replay.")
            self.run_id, self.task, config = row
            self.config = json.loads(config)
            self.calls = {key: (Completion(reply, model, tin, tout, "replayed", 1), cost) for key, reply, model, tin,
                          tout, cost in con.execute("SELECT call_key, reply, model, input_tokens, output_tokens, "
                                                    "cost_usd FROM llm_calls WHERE run_id = ?", (self.run_id,))}
        except sqlite3.OperationalError as exc:
            raise UsageError(f"{path} is not a kernelwright run store with LLM calls ({exc}).") from None
        finally:
            con.close()

    def answer(self, key: str) -> tuple[Completion, float | None]:
        if key not in self.calls:
            raise UsageError(f"The recorded run in {self.run_dir} has no reply for step '{key}'; replay with the "
                             "same task and the recorded settings.")
        return self.calls[key]

    def complete(self, system, messages, *, max_tokens, temperature) -> Completion:  # pragma: no cover
        raise UsageError("A replayed run answers by step key; call it through the journal.")
