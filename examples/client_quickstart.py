"""Register a graph, serve requests, attach feedback, start its RSI loop, read its status.

Run it while `make dev` runs: python -m examples.client_quickstart
"""

import asyncio

from temporalio.exceptions import WorkflowAlreadyStartedError

from examples.support_triage.graph import NODE_MODULES, build_spec
from spark.client import SparkClient
from spark.logging import configure_logging


async def main() -> None:
    """The README's client example, complete."""
    configure_logging("WARNING")  # logs on stderr; the example graph's simulated faults log INFO
    client = SparkClient.from_env()  # SPARK_DATABASE_URL, TEMPORAL_ADDRESS, SPARK_TASK_QUEUE
    try:
        version = client.register_graph(build_spec(), node_modules=NODE_MODULES)
        print(f"registered support-triage as {version.version_id}")
        for n in range(20):
            customer = f"cust-{n}"  # the routing key: sticky A/B assignment
            result = await client.run(
                "support-triage",
                {"ticket": f"I was charged twice for order {n}", "customer_id": customer},
                routing_key=customer,
            )
            client.feedback(result.trace_id, score=0.9 if result.status == "ok" else 0.0)
        print(f"served 20 requests; the last ran on {result.version_id}: {result.status}")
        try:
            handle = await client.start_improvement("support-triage", continuous=True)
            print(f"started {handle.id}")
        except WorkflowAlreadyStartedError:
            print("rsi-support-triage is already running")  # one loop per graph
        status = await client.status("support-triage")
        print(f"rsi-support-triage: cycle {status.cycle}, phase {status.phase}")
    finally:
        client.close()


if __name__ == "__main__":
    asyncio.run(main())
