data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# One customer-managed key for the data this stack stores: database storage,
# Performance Insights, the password secret and the image registry.
resource "aws_kms_key" "main" {
  description             = "${var.name}: RDS, Secrets Manager and ECR encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # The account administers the key; AWS services use it through grants made
  # on behalf of principals of this account, which IAM already governs.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.main.key_id
}

# ---------------------------------------------------------------- network access

# The database accepts PostgreSQL connections from the EKS worker nodes only
# (pods use their node's security group with the VPC CNI) and nothing else.
# No egress rules: a database never opens connections.
resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL for userapi: port 5432 from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id

  tags = { Name = "${var.name}-db" }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_nodes" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from EKS worker nodes (userapi pods)"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = module.eks.node_security_group_id
}

# The node security group of the EKS module allows all egress; this rule
# documents the one the database needs, so removing the module's default
# keeps userapi working.
resource "aws_vpc_security_group_egress_rule" "nodes_to_db" {
  security_group_id            = module.eks.node_security_group_id
  description                  = "userapi pods to PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.db.id
}

# ---------------------------------------------------------------- database

resource "aws_db_parameter_group" "postgres" {
  name_prefix = "${var.name}-pg${var.db_engine_version}-"
  family      = "postgres${var.db_engine_version}"
  description = "userapi: TLS only, slow-query and connection logging"

  # Clients must use TLS (userapi connects with verify-full).
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statements slower than 500 ms are logged (the latency SLO is 250 ms).
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "log_lock_waits"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# The RDS master password (rds_superuser): Secrets Manager and the bootstrap
# Job only. The pods log in as the application role (random_password.db).
resource "random_password" "db_master" {
  length = 40
  # Characters RDS accepts in a master password ('/', '@', '"' and space are not allowed).
  override_special = "!#$%^&*()-_=+[]{}<>:?"
}

# The application role's password (var.db_username), mounted into the pods.
resource "random_password" "db" {
  length = 40
  # No quote characters: the bootstrap Job passes it to psql as a variable.
  override_special = "!#%^*()-_=+[]{}<>:?"
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${var.name}-rds-monitoring"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "userapi" {
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name  = var.db_name
  username = var.db_master_username
  password = random_password.db_master.result
  port     = 5432

  multi_az               = var.db_multi_az
  db_subnet_group_name   = module.vpc.database_subnet_group_name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.postgres.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  storage_type          = "gp3"
  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.main.arn

  # Off: userapi authenticates with a password file (re-read when it opens
  # connections), not with 15-minute IAM tokens, and nothing else logs in; an
  # enabled but unused login path is attack surface without benefit.
  iam_database_authentication_enabled = false
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false
  apply_immediately                   = false
  maintenance_window                  = "sun:03:00-sun:04:00"

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "01:00-02:00"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-final"

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  performance_insights_retention_period = 7

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}

# ---------------------------------------------------------------- password

# The source of truth for the database credentials outside the cluster
# (break-glass access, `userapi db copy`, other tools). The Kubernetes Secret
# in app.tf carries the same password to the pods.
resource "aws_secretsmanager_secret" "db" {
  name_prefix             = "${var.name}/database-"
  description             = "userapi PostgreSQL master credentials, break-glass (username, password, host, port, dbname)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "db" {
  secret_id = aws_secretsmanager_secret.db.id
  secret_string = jsonencode({
    engine   = "postgres"
    username = var.db_master_username
    password = random_password.db_master.result
    host     = aws_db_instance.userapi.address
    port     = aws_db_instance.userapi.port
    dbname   = var.db_name
  })
}
