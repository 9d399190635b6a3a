"""Every Drops command, declared once: name, aliases, syntax, one-line help, example.

The parser resolves names and aliases here, ``help`` and ``help incr`` print
these declarations, ``docs/drops.md`` is generated from them (``python -m
ocean.drops.commands``; a test fails when the page is stale) and the
dashboard's editor completes from ``declarations()``.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Command:
    """The declaration of one Drops command."""

    name: str
    aliases: tuple[str, ...]
    syntax: str
    help: str
    example: str
    result: str
    access: str  # "read", "write" or "none": the scope the command needs on its route
    keywords: tuple[str, ...] = ()  # clause words after the route, for completion
    bare: bool = False  # also run by writing a route alone (``ROUTE``), without the name


COMMANDS: tuple[Command, ...] = (
    Command("save", ("write",), "save ROUTE [@KEY] PAYLOAD [keep SECONDS]",
            "Write a drop: an event when there is no key, else the entity's fields (\"+field\" entries increment).",
            'save users @alice name: "Alice" age: 30',
            "`{drop_id, seq, key}`", "write", ("keep",)),
    Command("get", ("read",), "get ROUTE @KEY  ·  ROUTE @KEY",
            "Read one entity: its fields with counters merged; fails with not_found when it is absent.",
            "read analytics/daily @2026-02-10",
            "the entity's fields", "read"),
    Command("list", (), "list ROUTE  ·  ROUTE",
            "List a route's entities, `key` first, sorted by key (at most the list_limit setting, 100); "
            "a route written alone does the same.",
            "list analytics/daily",
            "rows `{key, ...fields}`", "read", (), True),
    Command("update", ("patch",), "update ROUTE @KEY FIELDS",
            "Merge fields into an entity (created when missing); \"+field\" entries increment.",
            'update users @alice city: "Paris" "+logins": 1',
            "the merged fields", "write"),
    Command("remove", ("delete",), "remove ROUTE @KEY",
            "Delete an entity with its counters; fails with not_found when it is absent.",
            "remove users @alice",
            "`{removed: true}`", "write"),
    Command("incr", (), "incr ROUTE @KEY .FIELD [AMOUNT] [.FIELD [AMOUNT]]...",
            "Atomically add to counter fields (default 1; signed ints or floats); a missing entity or field starts at 0. "
            "A key like `@{day}` is today's date in the timezone setting; the answer then names it in `key`.",
            'incr analytics/endpoints @{day} ."POST /drop" .requests 2',
            "the new value of each field", "write"),
    Command("uniq", (), "uniq ROUTE @KEY .FIELD VALUE [VALUE]... [.FIELD VALUE...]...",
            "Add values (strings or integers) to distinct-count fields (HyperLogLog, about 0.8% error); the field "
            "reads as its estimate, and SQL's uniq_merge() unions fields over rows. A payload's \"~field\" entries "
            "do the same.",
            'uniq analytics/daily @{day} .visitors "u-123" "u-456"',
            "the new estimate of each field", "write"),
    Command("observe", (), "observe ROUTE @KEY .FIELD NUMBER [NUMBER]... [.FIELD NUMBER...]...",
            "Add numbers to distribution fields (DDSketch, 1% relative error on quantiles); the field reads as "
            "`{count, sum, min, max, p50, p90, p95, p99}`, and SQL's quantile_merge() merges fields over rows. "
            "A payload's \"%field\" entries do the same.",
            "observe analytics/latency @{day} .ms 12.5 40 7",
            "the new summary of each field", "write"),
    Command("find", ("query",),
            "find ROUTE[/*] [where F OP V [and|or ...]] [group F[, F] sum F avg F min F max F uniq F count] "
            "[sort F [asc|desc][, ...]] [limit N] [then pick F[, F]...]",
            "Rows of a route (entities `key` first, then events oldest first with `created_at`), "
            "filtered, grouped, sorted, limited, picked; ROUTE/* covers a subtree and adds `route`. "
            "`uniq F` is the distinct count of the group's uniq fields F together (their union, not their sum).",
            "find analytics/daily where page_views > 100 sort page_views desc limit 7",
            "rows", "read", ("where", "and", "or", "group", "sum", "avg", "min", "max", "uniq", "count",
                             "sort", "asc", "desc", "limit", "then", "pick")),
    Command("count", (), "count ROUTE[/*] [where F OP V [and|or ...]]",
            "How many rows `find` would give (entities and events).",
            "count analytics/events where status >= 500",
            "a number", "read", ("where", "and", "or")),
    Command("sql", (), "sql `SELECT ...`",
            "Run a SQL query (the text between backticks) over routes as tables.",
            'sql `SELECT key AS date, page_views FROM "analytics/daily" ORDER BY key DESC LIMIT 7`',
            "rows (objects in column order), with `columns` beside `data`", "read"),
    Command("history", (), "history ROUTE @KEY [limit N]",
            "Past versions of an entity, newest first (default 100).",
            "history users @alice limit 5",
            "rows `{version, seq, op, payload, updated_at, drop_id}`", "read", ("limit",)),
    Command("help", (), "help [COMMAND]",
            "List the commands, or show one command's syntax and an example.",
            "help incr",
            "the declarations", "none"),
)

_BY_WORD = {}
for _cmd in COMMANDS:
    _BY_WORD[_cmd.name] = _cmd
    for _alias in _cmd.aliases:
        _BY_WORD[_alias] = _cmd
BY_NAME = {c.name: c for c in COMMANDS}
WORDS = tuple(sorted(_BY_WORD))


def lookup(word: str) -> Command | None:
    """The command a typed word names (name or alias, any case), or None."""
    cmd = _BY_WORD.get(word)
    if cmd is None and not word.islower():
        cmd = _BY_WORD.get(word.lower())
    return cmd


def suggest(word: str, cutoff: float = 0.6) -> str | None:
    """The typed command name closest to ``word`` (difflib), or None."""
    close = difflib.get_close_matches(word.lower(), WORDS, n=1, cutoff=cutoff)
    return close[0] if close else None


def declarations() -> list[dict]:
    """Every declaration as JSON-able dicts (for ``help`` and the editor's completion)."""
    return [dict(asdict(c), aliases=list(c.aliases), keywords=list(c.keywords)) for c in COMMANDS]


def markdown() -> str:
    """The command reference of ``docs/drops.md``, generated from the declarations."""
    out = ["| command | aliases | syntax | result `data` |", "|---|---|---|---|"]
    for c in COMMANDS:
        name = f"`{c.name}` (or a bare route)" if c.bare else f"`{c.name}`"
        aliases = ", ".join(f"`{a}`" for a in c.aliases) or "—"
        out.append(f"| {name} | {aliases} | `{c.syntax.replace('|', '&#124;')}` | {c.result} |")
    for c in COMMANDS:
        out += ["", f"### {c.name}", "", c.help, "",
                "```", c.syntax, "```", "", "Example:", "", "```", c.example, "```"]
        if c.aliases:
            out += ["", "Aliases: " + ", ".join(f"`{a}`" for a in c.aliases) + "."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m ocean.drops.commands > section`
    print(markdown(), end="")
