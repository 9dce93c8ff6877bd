"""AsyncAPI 3.0 documents generated from the topic registry: what each service consumes *and* publishes, with every
message's full JSON Schema and its example, so another team can build a producer or a consumer from the document
alone. The registry (civicbus.topics) is the one source: a topic's producers and consumers name the services, its
schemas are the pydantic models the code validates with, its examples are the registry's own.

Schemas are inlined (no ``$ref`` between messages) and keep to what AsyncAPI's schema format (JSON Schema draft 07
plus a string ``discriminator``) accepts: pydantic's discriminator objects become plain ``oneOf``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from civicbus.topics import ALL_TOPICS, Topic


def _names(parties: tuple[str, ...]) -> set[str]:
    """The services a registry entry names ("triage (owner)" names triage; "upstream systems" names none)."""
    return {party.split(" ", 1)[0] for party in parties}


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
        return {key: _inline(value, definitions) for key, value in schema.items()
                if key not in ("$defs", "discriminator")}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


def payload_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema as the code validates it, self-contained."""
    schema = model.model_json_schema(mode="validation")
    return _inline(schema, schema.get("$defs", {}))


def _message(topic: Topic, model: type[BaseModel]) -> dict[str, Any]:
    examples = [example for example in topic.examples if isinstance(example, model)]
    return {
        "name": model.__name__,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip().split("\n\n", 1)[0].replace("\n", " "),
        "contentType": "application/json",
        "payload": payload_schema(model),
        "examples": [{"name": f"{model.__name__}-{index}", "payload": example.model_dump(mode="json")}
                     for index, example in enumerate(examples, 1)],
        "bindings": {"kafka": {"key": {"type": "string", "description": topic.key}}},
    }


def service_document(service: str, version: str, prefix: str = "") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``service``: a channel per topic it consumes or publishes, an operation each way."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        actions = [action for action, parties in (("receive", topic.consumers), ("send", topic.producers))
                   if service in _names(parties)]
        if not actions:
            continue
        channel_id = topic.name.replace(".", "_")
        names = []
        for model in topic.schemas:
            name = f"{channel_id}_{model.__name__}"
            messages[name] = _message(topic, model)
            names.append(name)
        channels[channel_id] = {
            "address": topic.full_name(prefix),
            "description": f"{topic.description}. Key: {topic.key}. Producers: {', '.join(topic.producers)}; "
                           f"consumers: {', '.join(topic.consumers)}.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"kafka": {"partitions": topic.partitions}},
        }
        for action in actions:
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in names],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"civicbus {service}",
            "version": version,
            "description": f"The Kafka interface of civicbus's {service} service: what it consumes and publishes.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
