"""Draws ../Architecture.png (run `make diagram`; needs Graphviz)."""

from diagrams import Cluster, Diagram, Edge
from diagrams.aws.compute import Lambda
from diagrams.aws.database import Dynamodb
from diagrams.aws.integration import SQS, Eventbridge
from diagrams.aws.management import Cloudwatch
from diagrams.aws.network import APIGateway
from diagrams.aws.security import SecretsManager
from diagrams.onprem.client import Client, User

GRAPH = {"pad": "0.4", "nodesep": "0.8", "ranksep": "1.2", "fontsize": "20", "splines": "spline"}

with Diagram(
    "Serverless Task Scheduler",
    filename="../Architecture",
    outformat="png",
    show=False,
    direction="LR",
    graph_attr=GRAPH,
):
    user = User("client\n(curl, app)")
    receiver = Client("webhook receiver\n(your URL)")
    with Cluster("your AWS account (one SAM stack)"):
        api = APIGateway(
            "REST API\nAPI key or IAM (ApiAuth)\nPOST /schedule-task\nGET, DELETE /tasks/{task_id}"
        )
        schedule = Lambda("schedule_task\nvalidate, arm, store")
        table = Dynamodb("tasks table\nstatus, attempts, TTL")
        with Cluster("trigger per far task, 2 min early (TriggerBackend)"):
            rule = Eventbridge(
                "rules (default)\none rule per task\ncron(M H D MON ? YYYY)\ndefault bus"
            )
            schedules = Eventbridge("scheduler\none schedule per task\nat(...) UTC\nstack's group")
        execute = Lambda("execute_task\nclaim, sign, deliver, record")
        retries = SQS("queue: delayed messages\nnear tasks, hops, retries")
        dead = SQS("dead-letter queue")
        alarm = Cloudwatch("alarm on\ndead letters")
        secret = SecretsManager("signing secret\n(whsec_)")
        reconcile = Lambda("reconcile_task\nevery 5 min")

    user >> Edge(label="HTTPS + JSON,\nx-api-key or SigV4") >> api >> schedule
    schedule >> Edge(label="2. write scheduled") >> table
    schedule >> Edge(label="1. far: PutRule + PutTargets") >> rule
    schedule >> Edge(label="1. far: CreateSchedule (role passed)") >> schedules
    schedule >> Edge(label="1. within 15 min: delayed to its second") >> retries
    rule >> Edge(label='1-2 min early: {"task_id", "due"}') >> execute
    schedules >> Edge(label="1-2 min early, as the scheduler role") >> execute
    schedules >> Edge(label="undeliverable", style="dotted") >> dead
    execute >> Edge(label="claim, then completed / failed") >> table
    execute >> Edge(label="signed webhook, pinned address") >> receiver
    execute >> Edge(label="read once", style="dotted") >> secret
    execute >> Edge(label="hop to the due second,\nnext occurrence, retry") >> retries
    retries >> Edge(label="at most 1 s early", style="dashed") >> execute
    execute >> Edge(label="failed tasks, crashes") >> dead
    dead >> alarm
    reconcile >> Edge(label="overdue / interrupted", style="dotted") >> table
    reconcile >> Edge(label="hand back", style="dotted") >> retries
