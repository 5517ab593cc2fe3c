# Least privilege in the database: the pods never log in as the RDS master.
#
# A Kubernetes Job (the database is private: only the cluster reaches it)
# logs in as the master once and creates the application role var.db_username:
# LOGIN, not a superuser, no CREATEDB/CREATEROLE, CONNECT on its database, and
# the owner of one schema of the same name (its search_path), so `userapi`'s
# own migrations (migrate_on_start, CREATE TABLE/INDEX in that schema) work and
# nothing else does: no rights on the public schema or on other databases.
# The Job runs again when the application password changes
# (terraform apply -replace=random_password.db), setting the new password.
# Splitting migrations from the runtime role further: run the chart with
# migrations.mode=hook and give the hook Job this role while the pods get a
# role with only SELECT/INSERT/UPDATE/DELETE on the schema's tables.

resource "kubernetes_namespace" "db_bootstrap" {
  metadata {
    name = "${var.app_namespace}-db-bootstrap"
    labels = {
      "pod-security.kubernetes.io/enforce" = "restricted"
    }
  }

  depends_on = [module.eks]
}

# The master credentials, only in this namespace (the userapi pods cannot read it).
resource "kubernetes_secret" "db_master" {
  metadata {
    name      = "userapi-db-master"
    namespace = kubernetes_namespace.db_bootstrap.metadata[0].name
  }
  data = {
    PGPASSWORD  = random_password.db_master.result
    APPPASSWORD = random_password.db.result
  }
  type = "Opaque"
}

resource "kubernetes_config_map" "db_bootstrap" {
  metadata {
    name      = "userapi-db-bootstrap"
    namespace = kubernetes_namespace.db_bootstrap.metadata[0].name
  }
  data = {
    "bootstrap.sql" = <<-SQL
      \set ON_ERROR_STOP on
      SELECT format('CREATE ROLE %I LOGIN', :'app_role')
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role') \gexec
      ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
      REVOKE ALL ON DATABASE :"db_name" FROM PUBLIC;
      GRANT CONNECT, TEMPORARY ON DATABASE :"db_name" TO :"app_role";
      REVOKE CREATE ON SCHEMA public FROM PUBLIC;
      GRANT :"app_role" TO CURRENT_USER;
      CREATE SCHEMA IF NOT EXISTS :"app_role" AUTHORIZATION :"app_role";
      REVOKE :"app_role" FROM CURRENT_USER;
      ALTER ROLE :"app_role" IN DATABASE :"db_name" SET search_path = :"app_role";
    SQL
  }
}

resource "kubernetes_job_v1" "db_bootstrap" {
  metadata {
    # A new application password makes a new Job (Jobs are immutable).
    name      = "userapi-db-bootstrap-${substr(sha256(random_password.db.result), 0, 8)}"
    namespace = kubernetes_namespace.db_bootstrap.metadata[0].name
  }

  spec {
    backoff_limit              = 4
    active_deadline_seconds    = 600
    ttl_seconds_after_finished = 3600

    template {
      metadata {}
      spec {
        restart_policy                  = "Never"
        automount_service_account_token = false

        security_context {
          run_as_non_root = true
          run_as_user     = 70
          run_as_group    = 70
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name  = "psql"
          image = var.db_bootstrap_image
          command = [
            "psql", "--no-psqlrc",
            "--set=app_role=${var.db_username}", "--set=db_name=${var.db_name}",
            "--file=/sql/bootstrap.sql",
          ]
          # The password variable comes from the environment, not the command line.
          args = ["--set=app_password=$(APPPASSWORD)"]

          env {
            name  = "PGHOST"
            value = aws_db_instance.userapi.address
          }
          env {
            name  = "PGPORT"
            value = tostring(aws_db_instance.userapi.port)
          }
          env {
            name  = "PGDATABASE"
            value = var.db_name
          }
          env {
            name  = "PGUSER"
            value = var.db_master_username
          }
          env {
            name  = "PGSSLMODE"
            value = "verify-full"
          }
          env {
            name  = "PGSSLROOTCERT"
            value = "/ca/ca.crt"
          }
          env_from {
            secret_ref {
              name = kubernetes_secret.db_master.metadata[0].name
            }
          }

          resources {
            requests = { cpu = "50m", memory = "32Mi" }
            limits   = { cpu = "200m", memory = "64Mi" }
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "sql"
            mount_path = "/sql"
            read_only  = true
          }
          volume_mount {
            name       = "ca"
            mount_path = "/ca"
            read_only  = true
          }
        }

        volume {
          name = "sql"
          config_map {
            name = kubernetes_config_map.db_bootstrap.metadata[0].name
          }
        }
        volume {
          name = "ca"
          secret {
            secret_name = kubernetes_secret.db_bootstrap_ca.metadata[0].name
          }
        }
      }
    }
  }

  wait_for_completion = true
  timeouts {
    create = "10m"
    update = "10m"
  }

  depends_on = [aws_vpc_security_group_ingress_rule.db_from_nodes]
}

# The RDS CA bundle for the Job's verify-full connection (same bundle as the pods').
resource "kubernetes_secret" "db_bootstrap_ca" {
  metadata {
    name      = "userapi-db-ca"
    namespace = kubernetes_namespace.db_bootstrap.metadata[0].name
  }
  data = {
    "ca.crt" = data.http.rds_ca_bundle.response_body
  }
  type = "Opaque"
}
