"""llmq provider simulator: an async HTTP server speaking six LLM providers' wire formats.

Used by every llmq test and benchmark instead of real providers. Public API:

* ``simulator.server.build_app(config)``, ``serve(host, port, config)``,
  ``start_in_thread(config, host, port) -> RunningSimulator``
* ``simulator.config.SimConfig`` / ``ProviderBehaviour`` / ``ModelOverride``
* ``simulator.schemagen.instance(schema, seed)``: a deterministic valid instance of a JSON Schema
* ``simulator.tooling``: the neutral request features and the tool-choice / JSON / stop rules

api_base per provider (``{url}`` = e.g. ``http://127.0.0.1:8900``): openai ``{url}/openai/v1``,
anthropic ``{url}/anthropic``, google ``{url}/google``, cohere ``{url}/cohere``, huggingface
``{url}/huggingface/v1``, local ``{url}/local/v1``, ollama ``{url}/ollama``.
"""

from simulator.config import ModelOverride, ProviderBehaviour, SimConfig

__all__ = ["ModelOverride", "ProviderBehaviour", "SimConfig"]
