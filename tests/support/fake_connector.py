#!/usr/bin/env python3
"""A tiny Airbyte source connector for failure paths the real faker connector cannot produce.

It speaks the real protocol (spec / check / discover / read) and its behaviour comes from its config:
``stream_name`` (default "items"), ``records`` (how many to emit), ``fail_with`` (emit a TRACE error
with this message after the records and exit 1), ``exit_code`` (``read`` exits with it, silently),
``check_fails`` (``check`` reports FAILED with it: the config is rejected), ``check_crashes`` (``check`` reports a
transient TRACE error with it and exits 1, as the CDK does when a check cannot run), ``no_primary_key`` (the
stream declares none), ``sleep`` (seconds every command waits before answering).

For the fault-injection tests: ``streams`` (several stream names; each gets ``records`` records, ids 0..records-1,
one after the other) and ``pause_after`` (after that many records in all, flush and sleep ``pause_seconds``,
default 600: a connector caught mid-read).
"""

import json
import sys
import time
from pathlib import Path

SPEC = {
    "connectionSpecification": {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {"type": "integer", "minimum": 0},
            "api_key": {"type": "string", "airbyte_secret": True},
            "stream_name": {"type": "string"},
            "fail_with": {"type": "string"},
            "exit_code": {"type": "integer"},
            "check_fails": {"type": "string"},
            "check_crashes": {"type": "string"},
            "no_primary_key": {"type": "boolean"},
            "sleep": {"type": "number"},
            "streams": {"type": "array", "items": {"type": "string"}},
            "pause_after": {"type": "integer"},
            "pause_seconds": {"type": "number"},
        },
    }
}


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")


def option(name: str, default: object = None) -> object:
    args = sys.argv[2:]
    if name not in args:
        return default
    return json.loads(Path(args[args.index(name) + 1]).read_text())


def stream_names(config: dict) -> list:
    return list(config.get("streams") or [config.get("stream_name", "items")])


def stream(config: dict, name: str | None = None) -> dict:
    if config.get("no_primary_key"):
        return {**_stream(config, name), "source_defined_primary_key": []}
    return _stream(config, name)


def _stream(config: dict, name: str | None = None) -> dict:
    return {
        "name": name or stream_names(config)[0],
        "json_schema": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        },
        "supported_sync_modes": ["full_refresh"],
        "source_defined_primary_key": [["id"]],
    }


def main() -> int:
    command = sys.argv[1]
    config = option("--config", {})
    if config.get("sleep"):
        time.sleep(float(config["sleep"]))
    if command == "spec":
        emit({"type": "SPEC", "spec": SPEC})
    elif command == "check" and config.get("check_crashes"):
        error = {"message": config["check_crashes"], "failure_type": "transient_error"}
        emit({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": 1700000000000, "error": error}})
        return 1
    elif command == "check":
        failure = config.get("check_fails")
        status = {"status": "FAILED", "message": failure} if failure else {"status": "SUCCEEDED"}
        emit({"type": "CONNECTION_STATUS", "connectionStatus": status})
    elif command == "discover":
        emit({"type": "CATALOG", "catalog": {"streams": [stream(config, n) for n in stream_names(config)]}})
    elif command == "read":
        emitted = 0
        for name in stream_names(config):
            for i in range(config["records"]):
                emit(
                    {
                        "type": "RECORD",
                        "record": {
                            "stream": name,
                            "data": {"id": i, "name": f"n{i}"},
                            "emitted_at": 1700000000000,
                        },
                    }
                )
                emitted += 1
                if emitted == config.get("pause_after"):
                    sys.stdout.flush()
                    time.sleep(config.get("pause_seconds", 600))
        name = stream_names(config)[-1]
        if config.get("fail_with"):
            emit(
                {
                    "type": "TRACE",
                    "trace": {
                        "type": "ERROR",
                        "emitted_at": 1700000000000,
                        "error": {"message": config["fail_with"], "failure_type": "config_error"},
                    },
                }
            )
            return 1
        emit(
            {
                "type": "STATE",
                "state": {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": name}, "stream_state": {"done": True}},
                },
            }
        )
    return int(config.get("exit_code", 0)) if command == "read" else 0


if __name__ == "__main__":
    sys.exit(main())
