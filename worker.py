"""``python worker.py`` in a checkout: the Spark RSI worker (``spark.worker``; installed as the
``spark-worker`` command)."""

from spark.worker import main

if __name__ == "__main__":
    main()
