"""Errors, config, kv and log through the stand-in host; the export adapters."""

from datetime import timedelta

import pytest

from router_guest import Event, HandlerError, config, handler, kv, log, testing, transform
from router_guest import _export


def test_handler_error_helpers_build_the_matching_kind():
    retry = HandlerError.retryable("database is down")
    assert retry.is_retryable() and retry.kind == "retryable"
    assert retry.message == "database is down"
    assert str(retry) == "retryable: database is down"
    fatal = HandlerError.fatal("no orderId")
    assert not fatal.is_retryable() and str(fatal) == "fatal: no orderId"
    assert fatal == HandlerError.fatal("no orderId") != retry
    assert repr(fatal) == "HandlerError.fatal('no orderId')"


def test_config_reads_what_the_test_set():
    assert config.get("source") is None
    assert config.get_or("source", "/default") == "/default"
    with pytest.raises(HandlerError, match="`source`"):
        config.require("source")
    testing.set_config("source", "/configured")
    assert config.get("source") == "/configured"
    assert config.require("source") == "/configured"
    testing.clear_config()
    assert config.get("source") is None


def test_kv_errors_say_whether_a_retry_can_help():
    with pytest.raises(kv.InvalidKey) as bad_key:
        kv.get("")
    assert bad_key.value.kind == "invalid-key" and not bad_key.value.is_retryable()
    assert isinstance(bad_key.value, kv.KvError)
    kv.set("word", b"abc")
    with pytest.raises(kv.InvalidValue) as not_integer:
        kv.increment("word", 1)
    converted = not_integer.value.to_handler_error()
    assert converted == HandlerError.fatal("key-value store: the value of 'word' is not an integer")
    assert kv.Unavailable("no answer").to_handler_error() == HandlerError.retryable("key-value store: no answer")
    assert kv.QuotaExceeded("full").to_handler_error().is_retryable()
    with pytest.raises(kv.InvalidValue, match="overflows"):
        kv.set("n", str(2**63 - 1))
        kv.increment("n", 1)
    with pytest.raises(kv.InvalidValue, match="limit"):
        kv.set("big", b"x" * (1 << 20 + 1))


def test_kv_stores_bytes_increments_and_deletes():
    kv.set("greeting", "hello")
    assert kv.get("greeting") == b"hello"
    assert kv.increment("visits", 2) == 2 and kv.increment("visits", -5) == -3
    assert kv.get("visits") == b"-3"
    assert kv.delete("greeting") is True and kv.delete("greeting") is False
    assert testing.kv_keys() == ["visits"]


def test_kv_keys_expire_and_increment_keeps_the_expiry(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(testing._time, "monotonic", lambda: now[0])
    kv.set("session", b"1", ttl=timedelta(seconds=2))
    kv.set("counter", b"1", ttl=5)
    assert kv.increment("counter", 1) == 2
    now[0] += 2.5
    assert kv.get("session") is None
    assert kv.get("counter") == b"2"
    now[0] += 3
    assert kv.get("counter") is None and kv.increment("counter", 1) == 1


def test_an_injected_failure_reaches_every_call():
    testing.fail_kv(kv.Unavailable("down"))
    with pytest.raises(kv.Unavailable):
        kv.get("a")
    testing.fail_kv(None)
    assert kv.get("a") is None


def test_logs_are_captured_in_order():
    log.info("one")
    log.warn("two")
    log.error(3)
    log.debug("four")
    log.trace("five")
    assert testing.logs() == [("info", "one"), ("warn", "two"), ("error", "3"), ("debug", "four"), ("trace", "five")]


def test_the_fixture_gives_each_test_a_clean_host(router_host):
    assert router_host is testing
    assert testing.logs() == [] and testing.kv_keys() == [] and config.get("source") is None


# The adapters run inside a component with the generated bindings; natively the
# same code runs against stand-ins of the two WIT result types.
class _Err(Exception):
    def __init__(self, value):
        self.value = value


class _Types:
    class HandlerError_Retryable:
        def __init__(self, value):
            self.value = value

    class HandlerError_Fatal:
        def __init__(self, value):
            self.value = value


@pytest.fixture
def wit(monkeypatch):
    monkeypatch.setattr(_export._host, "WitErr", _Err)
    monkeypatch.setattr(_export._host, "wit_types", _Types)
    monkeypatch.setitem(_export._registered, "handler", [])
    monkeypatch.setitem(_export._registered, "transform", [])


def _record(event: Event):
    return event._r


def test_the_handler_adapter_passes_records_through(wit):
    @handler
    def handle(event):
        return [event.derive(f"{event.id}-seen", "seen"), event]

    call = _export.exported("handler", "app")
    record = _record(Event("e-1", "/s", "t"))
    out = call(record)
    assert out[1] is record and out[0].id == "e-1-seen"


def _error_of(call, record):
    with pytest.raises(_Err) as raised:
        call(record)
    return type(raised.value.value).__name__, raised.value.value.value


def test_errors_become_the_wit_variant_and_exceptions_are_fatal_and_logged(wit):
    outcomes = iter([
        HandlerError.retryable("later"),
        kv.Unavailable("down"),
        kv.InvalidKey("bad"),
        KeyError("orderId"),
        "not a list",
        [1],
    ])

    @handler
    def handle(event):
        outcome = next(outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call = _export.exported("handler", "app")
    record = _record(Event("e-1", "/s", "t"))
    assert _error_of(call, record) == ("HandlerError_Retryable", "later")
    assert _error_of(call, record) == ("HandlerError_Retryable", "key-value store: down")
    assert _error_of(call, record) == ("HandlerError_Fatal", "key-value store: bad")
    kind, message = _error_of(call, record)
    assert kind == "HandlerError_Fatal"
    assert message.startswith("unhandled KeyError at ") and message.endswith("in handle: 'orderId'")
    assert ("error", message) in testing.logs()
    assert any(level == "debug" and "Traceback" in text for level, text in testing.logs())
    kind, message = _error_of(call, record)
    assert kind == "HandlerError_Fatal" and "the handler returned 'not a list'" in message
    kind, message = _error_of(call, record)
    assert kind == "HandlerError_Fatal" and "the handler returned [1]" in message


def test_the_transform_adapter_keeps_drops_and_checks(wit):
    outcomes = iter([None, "keep", 42])

    @transform
    def redact(event):
        outcome = next(outcomes)
        return event if outcome == "keep" else outcome

    call = _export.exported("transform", "app")
    record = _record(Event("e-1", "/s", "t"))
    assert call(record) is None
    assert call(record) is record
    assert _error_of(call, record)[0] == "HandlerError_Fatal"


def test_a_module_without_the_worlds_function_fails_the_build(wit):
    @transform
    def redact(event):
        return event

    with pytest.raises(RuntimeError, match='no @router_guest.handler function; it has a @transform'):
        _export.exported("handler", "app")
    transform(redact)
    with pytest.raises(RuntimeError, match="more than one"):
        _export.exported("transform", "app")
