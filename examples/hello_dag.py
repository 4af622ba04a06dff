from datetime import datetime, timedelta
from flow import DAG
from flow.operators import BashOperator, DummyOperator
dag = DAG(dag_id="hello_dag", default_args={"owner": "flow", "start_date": datetime.now() - timedelta(days=2)}, schedule=None)
run_after = DummyOperator(task_id="run_after", dag=dag)
run_first = BashOperator(task_id="run_first", bash_command='echo "Hello World!"', dag=dag)
run_first >> run_after
if __name__ == "__main__":
    dag.cli()
