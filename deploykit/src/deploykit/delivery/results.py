"""Redis result backend: a task's state written in one round trip instead of two.

Celery's key-value backends read the stored state before writing a new one (a lost worker's late write
must not overwrite a SUCCESS), then write and publish it: a GET and a MULTI/EXEC, two round trips for
every state a task reports (STARTED, then SUCCESS or FAILURE). Here one script does the same three
steps inside Redis, atomically (so there is no window between the read and the write either).
Measured in `make bench` (docs/benchmarks/): per task on the shipped worker, 2 packets fewer.

Kept exactly: the SUCCESS guard, the expiries (`result_expires`, `result_failure_expires` for
FAILURE), the PUBLISH that wakes `AsyncResult.get()`, the size limit, Celery's retry policy. Only the
plain `redis://` / `rediss://` backend with the JSON result serializer is changed (the script must
read the stored state); any other backend or serializer is Celery's, untouched.

`_store_result` is a private member of Celery's backend: deploykit.versions pins Celery's minor series.
"""

from __future__ import annotations

from celery import states
from celery.app.backends import by_url
from celery.backends.redis import RedisBackend as CeleryRedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str
from kombu.utils.objects import cached_property

STORE_UNLESS_SUCCEEDED = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class RedisBackend(CeleryRedisBackend):
    """Celery's Redis result backend whose task-state write is one script (check, set, publish)."""

    @cached_property
    def _store_unless_succeeded(self):
        return self.client.register_script(STORE_UNLESS_SUCCEEDED)

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        if self.serializer != "json":
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        expires = self.failure_expires if state == states.FAILURE else self.expires
        self.ensure(self._store_unless_succeeded, ([self.get_key_for_task(task_id)], [value, expires or 0]))
        return result


class ResultBackend:
    """The app's `backend_cls`: Celery's backend for the configured `result_backend`, except that the
    plain Redis backend becomes RedisBackend above. A class, because Celery builds the backend by
    calling `backend_cls(app=..., url=...)` whenever a thread first needs one."""

    def __new__(cls, app, url=None, **kwargs):
        configured = url or app.conf.result_backend
        backend, url = by_url(configured, app.loader)
        # Only a plain redis:// or rediss:// URL: a class, or a backend named by path, is the project's choice.
        if backend is CeleryRedisBackend and str(configured).partition("://")[0] in ("redis", "rediss"):
            backend = RedisBackend
        return backend(app=app, url=url, **kwargs)


def install(app) -> None:
    """Use ResultBackend on `app` unless the project chose a backend class of its own (`backend_cls`, or a
    class or a class's path as `result_backend`)."""
    if app.backend_cls is None:
        app.backend_cls = ResultBackend
