"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import flow.store.models
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('backfill',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('from_date', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('to_date', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('reprocess_behavior', sa.String(length=20), nullable=False),
    sa.Column('max_active_runs', sa.Integer(), nullable=False),
    sa.Column('dag_run_conf', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('created_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backfill'))
    )
    op.create_table('connection',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('conn_id', sa.String(length=250), nullable=False),
    sa.Column('conn_type', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('host', sa.String(length=500), nullable=True),
    sa.Column('schema', sa.String(length=500), nullable=True),
    sa.Column('login', sa.Text(), nullable=True),
    sa.Column('password', sa.Text(), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('extra', sa.Text(), nullable=True),
    sa.Column('updated_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connection')),
    sa.UniqueConstraint('conn_id', name=op.f('uq_connection_conn_id'))
    )
    op.create_table('dag',
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=False),
    sa.Column('is_paused', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('owners', sa.String(length=2000), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('schedule_description', sa.String(length=1000), nullable=False),
    sa.Column('max_active_runs', sa.Integer(), nullable=True),
    sa.Column('max_active_tasks', sa.Integer(), nullable=True),
    sa.Column('next_dagrun', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('next_dagrun_data_interval_start', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('next_dagrun_data_interval_end', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('next_dagrun_create_after', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_parsed_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('dag_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('dag_id', name=op.f('pk_dag'))
    )
    with op.batch_alter_table('dag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dag_is_paused_is_active_next_dagrun_create_after'), ['is_paused', 'is_active', 'next_dagrun_create_after'], unique=False)

    op.create_table('dag_code',
    sa.Column('fileloc_hash', sa.String(length=64), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=False),
    sa.Column('source_code', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('source_hash', sa.String(length=64), nullable=False),
    sa.Column('last_updated', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fileloc_hash', name=op.f('pk_dag_code'))
    )
    op.create_table('event_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dttm', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=500), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=True),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('task_id', sa.String(length=250), nullable=True),
    sa.Column('details', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_log'))
    )
    with op.batch_alter_table('event_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_log_dttm'), ['dttm'], unique=False)

    op.create_table('import_error',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=2000), nullable=False),
    sa.Column('lineno', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('stacktrace', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('timestamp', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_error'))
    )
    op.create_table('job',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_type', sa.String(length=50), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('hostname', sa.String(length=1000), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('executor', sa.String(length=1000), nullable=True),
    sa.Column('start_date', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('end_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('latest_heartbeat', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_job_type_state_latest_heartbeat'), ['job_type', 'state', 'latest_heartbeat'], unique=False)

    op.create_table('pool',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pool')),
    sa.UniqueConstraint('name', name=op.f('uq_pool_name'))
    )
    op.create_table('serialized_dag',
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=False),
    sa.Column('data', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('dag_hash', sa.String(length=64), nullable=False),
    sa.Column('last_updated', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dag_id', name=op.f('pk_serialized_dag'))
    )
    op.create_table('user',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=256), nullable=False),
    sa.Column('email', sa.String(length=500), nullable=True),
    sa.Column('password_hash', sa.String(length=500), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_login', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('username', name=op.f('uq_user_username'))
    )
    op.create_table('variable',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('val', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('updated_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variable')),
    sa.UniqueConstraint('key', name=op.f('uq_variable_key'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    op.create_table('dag_run',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('logical_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('data_interval_start', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('data_interval_end', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('run_type', sa.String(length=50), nullable=False),
    sa.Column('state', sa.String(length=50), nullable=False),
    sa.Column('conf', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('dag_hash', sa.String(length=64), nullable=True),
    sa.Column('queued_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('start_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('end_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('backfill_id', sa.Integer(), nullable=True),
    sa.Column('created_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['backfill_id'], ['backfill.id'], name=op.f('fk_dag_run_backfill_id_backfill'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dag_run')),
    sa.UniqueConstraint('dag_id', 'logical_date', name=op.f('uq_dag_run_dag_id_logical_date')),
    sa.UniqueConstraint('dag_id', 'run_id', name=op.f('uq_dag_run_dag_id_run_id'))
    )
    with op.batch_alter_table('dag_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dag_run_state_dag_id'), ['state', 'dag_id'], unique=False)

    op.create_table('task_instance',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('task_id', sa.String(length=250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('max_tries', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=50), nullable=True),
    sa.Column('operator', sa.String(length=1000), nullable=False),
    sa.Column('pool', sa.String(length=256), nullable=False),
    sa.Column('pool_slots', sa.Integer(), nullable=False),
    sa.Column('queue', sa.String(length=256), nullable=False),
    sa.Column('priority_weight', sa.Integer(), nullable=False),
    sa.Column('executor', sa.String(length=1000), nullable=True),
    sa.Column('hostname', sa.String(length=1000), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('queued_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('start_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('end_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('next_retry_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_heartbeat_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('queued_by_job_id', sa.Integer(), nullable=True),
    sa.Column('external_executor_id', sa.String(length=1000), nullable=True),
    sa.Column('rendered_fields', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_at', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dag_id', 'run_id'], ['dag_run.dag_id', 'dag_run.run_id'], name=op.f('fk_task_instance_dag_id_dag_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_instance')),
    sa.UniqueConstraint('dag_id', 'run_id', 'task_id', 'map_index', name=op.f('uq_task_instance_dag_id_run_id_task_id_map_index'))
    )
    with op.batch_alter_table('task_instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_instance_dag_id_task_id_state'), ['dag_id', 'task_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_instance_state_pool'), ['state', 'pool'], unique=False)

    op.create_table('task_instance_try',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_instance_id', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=50), nullable=True),
    sa.Column('hostname', sa.String(length=1000), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('executor', sa.String(length=1000), nullable=True),
    sa.Column('queued_at', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('start_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('end_date', flow.store.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['task_instance_id'], ['task_instance.id'], name=op.f('fk_task_instance_try_task_instance_id_task_instance'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_instance_try')),
    sa.UniqueConstraint('task_instance_id', 'try_number', name=op.f('uq_task_instance_try_task_instance_id_try_number'))
    )
    op.create_table('xcom',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('task_instance_id', sa.Integer(), nullable=False),
    sa.Column('dag_id', sa.String(length=250), nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('task_id', sa.String(length=250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('value', sa.Text().with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('timestamp', flow.store.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_instance_id'], ['task_instance.id'], name=op.f('fk_xcom_task_instance_id_task_instance'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_xcom')),
    sa.UniqueConstraint('task_instance_id', 'key', name=op.f('uq_xcom_task_instance_id_key'))
    )
    with op.batch_alter_table('xcom', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xcom_dag_id_run_id_task_id'), ['dag_id', 'run_id', 'task_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('xcom', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xcom_dag_id_run_id_task_id'))

    op.drop_table('xcom')
    op.drop_table('task_instance_try')
    with op.batch_alter_table('task_instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_instance_state_pool'))
        batch_op.drop_index(batch_op.f('ix_task_instance_dag_id_task_id_state'))

    op.drop_table('task_instance')
    with op.batch_alter_table('dag_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dag_run_state_dag_id'))

    op.drop_table('dag_run')
    op.drop_table('api_token')
    op.drop_table('variable')
    op.drop_table('user')
    op.drop_table('serialized_dag')
    op.drop_table('pool')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_job_type_state_latest_heartbeat'))

    op.drop_table('job')
    op.drop_table('import_error')
    with op.batch_alter_table('event_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_log_dttm'))

    op.drop_table('event_log')
    op.drop_table('dag_code')
    with op.batch_alter_table('dag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dag_is_paused_is_active_next_dagrun_create_after'))

    op.drop_table('dag')
    op.drop_table('connection')
    op.drop_table('backfill')

