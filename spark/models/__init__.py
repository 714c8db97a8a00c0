"""LLM calls from inside graph nodes, through the providers' real SDKs.

``from spark.models.openai import OpenAIModel`` and ``from spark.models.anthropic import
AnthropicModel`` read the model, temperature, instructions and budget from the node's config (so
a config change the RSI loop ships changes what is called) and add each call's tokens and cost
to the node's span. Prices live in ``spark.models.pricing``. Neither SDK is imported until a
model is built.
"""

from spark.models._sdk import close_clients
from spark.models.base import ChatModel, Completion, LLMSettings, Message
from spark.models.pricing import LIST_PRICES, ModelPrice, PriceTable, TokenUsage, default_prices

__all__ = [
    "LIST_PRICES",
    "ChatModel",
    "Completion",
    "LLMSettings",
    "Message",
    "ModelPrice",
    "PriceTable",
    "TokenUsage",
    "close_clients",
    "default_prices",
]
