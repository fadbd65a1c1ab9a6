"""Draws ../Architecture.png (run `make diagram`; needs Graphviz)."""

from diagrams import Cluster, Diagram, Edge
from diagrams.aws.compute import Lambda
from diagrams.aws.database import Dynamodb
from diagrams.aws.integration import Eventbridge
from diagrams.aws.network import APIGateway
from diagrams.onprem.client import Client, User

GRAPH = {"pad": "0.4", "nodesep": "0.9", "ranksep": "1.3", "fontsize": "20", "splines": "spline"}

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
        api = APIGateway("REST API\nPOST /schedule-task\nGET /tasks/{task_id}")
        schedule = Lambda("schedule_task\nvalidate, store, arm")
        table = Dynamodb("tasks table\nstatus, attempts, TTL")
        rule = Eventbridge("one-shot rule per task\ncron(M H D MON ? YYYY)\ndefault bus")
        execute = Lambda("execute_task\nclaim, deliver, record")

    user >> Edge(label="HTTPS + JSON") >> api >> schedule
    schedule >> Edge(label="1. write pending\n3. mark scheduled") >> table
    schedule >> Edge(label="2. PutRule + PutTargets") >> rule
    schedule >> Edge(label="imminent: async invoke", style="dashed") >> execute
    rule >> Edge(label='at run_at: {"task_id": ...}') >> execute
    execute >> Edge(label="claim, then completed / failed") >> table
    execute >> Edge(label="webhook (method, JSON body, headers)") >> receiver
    execute >> Edge(label="one-shot: delete rule", style="dotted") >> rule
