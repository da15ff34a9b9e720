"""Annotate a CVAT task with one function through two drivers: cvat-sdk's and cvat-aa's.

A cvat-aa function is a plain cvat-sdk auto-annotation function (``spec`` + ``detect``), so
the object ``cvat_aa.load_function`` returns works with ``cvat_sdk.auto_annotation`` as is.
``cvat_aa.annotate_task`` takes the same keyword arguments as cvat-sdk's and adds frame
selection, batching, video tasks, plugin hooks and a summary of what it did.

Try it against cvat-aa's local test server:

    cvat-aa sandbox                           # prints the URL, a user, a password, a task id
    pip install ./examples/face-detection     # or any other function plugin
    PASS=... python examples/scripts/annotate_with_sdk.py \\
        TASK_ID --function face_detection --server-host URL --auth USER

Server and authentication options are cvat-cli's (``--auth``, ``PASS``, ``CVAT_ACCESS_TOKEN``,
``--profile``).
"""

import argparse
import logging

import cvat_aa
import cvat_sdk.auto_annotation as cvat_sdk_aa
from cvat_sdk.core.auth import configure_client_auth_arguments, make_client_from_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configure_client_auth_arguments(parser)
    parser.add_argument("task_id", type=int, metavar="TASK_ID", help="the task to annotate")
    parser.add_argument(
        "--function",
        default="face_detection",
        help="an installed function's name (see 'cvat-aa functions list'), a module or a .py file",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    function = cvat_aa.load_function(args.function)

    with make_client_from_cli(args) as client:
        # cvat-sdk's driver: image tasks only, every frame, one frame at a time.
        cvat_sdk_aa.annotate_task(client, args.task_id, function, clear_existing=True)

        # cvat-aa's driver, called the same way; frames= and batch_size= are its own.
        summary = cvat_aa.annotate_task(
            client,
            args.task_id,
            function,
            clear_existing=True,
            frames="0-9",
            batch_size=4,
        )
    print(summary)


if __name__ == "__main__":
    main()
