"""Kestra's HTTP polling trigger, `io.kestra.plugin.core.http.Trigger` (and `io.kestra.plugin.fs.http.Trigger`):
sends its request on a worker of its group every `interval` and starts an execution when `responseCondition`
renders true, with the response as `{{ trigger.code }}`, `{{ trigger.headers }}`, `{{ trigger.body }}` and
`{{ trigger.uri }}`.

The request is the Request task's (workers/plugins/http.py). The condition sees `response.statusCode`,
`response.body` and `response.headers`; so that it can look at any status, a response of 400 or more does not fail
the evaluation unless `options.allowFailed` is set to false.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app import templating
from app.model.polling import Polled, PollingTrigger
from workers.plugin_api import RunContext
from workers.plugins.http import HttpOptions, HttpRequest


class HttpTrigger(PollingTrigger):
    type: Literal["io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"]
    uri: str
    method: str = "GET"
    body: str | None = None
    formData: dict[str, Any] | None = None
    contentType: str = "application/json"
    headers: dict[str, Any] | None = None
    options: HttpOptions | None = None
    responseCondition: str = Field("{{ response.statusCode < 400 }}",
                                   description="Fires when it renders true; sees response.statusCode/body/headers.")

    def evaluate(self, ctx: RunContext, state: dict[str, Any]) -> Polled:
        options = self.options or HttpOptions()
        if "allowFailed" not in options.model_fields_set:
            options = options.model_copy(update={"allowFailed": True})
        request = HttpRequest.model_validate({
            "id": self.id, "type": "io.kestra.plugin.core.http.Request", "uri": self.uri, "method": self.method,
            "body": self.body, "formData": self.formData, "contentType": self.contentType, "headers": self.headers,
            "options": options})
        outputs = request.run(ctx)
        response = {"statusCode": outputs["code"], "body": outputs["body"], "headers": outputs["headers"]}
        if not templating.is_truthy(ctx.render(self.responseCondition, {"response": response})):
            return Polled(f"HTTP {outputs['code']}: responseCondition false")
        return Polled(f"HTTP {outputs['code']}", variables=outputs)


TRIGGERS: list[type[PollingTrigger]] = [HttpTrigger]
