# userapi itself: namespace, Secrets, TLS certificate and the Helm release of
# deploy/helm/userapi in PostgreSQL mode behind an ALB.

locals {
  image_repository = var.image_repository != "" ? var.image_repository : aws_ecr_repository.userapi.repository_url
  certificate_arn  = var.acm_certificate_arn != "" ? var.acm_certificate_arn : aws_acm_certificate_validation.userapi[0].certificate_arn

  # Values of deploy/helm/userapi (keys as in its values.yaml). Secrets are
  # referenced by name; no secret value appears here, so the rendered values
  # can be shown (output chart_values) and reused for a manual `helm upgrade`.
  chart_values = {
    image = {
      repository = local.image_repository
      tag        = var.image_tag
    }
    database = {
      type = "postgres"
    }
    persistence = {
      enabled = false
    }
    postgres = {
      external = {
        host           = aws_db_instance.userapi.address
        port           = aws_db_instance.userapi.port
        database       = var.db_name
        user           = var.db_username
        existingSecret = kubernetes_secret.db_password.metadata[0].name
        passwordKey    = "password"
      }
      tls = {
        mode     = "verify-full"
        caSecret = kubernetes_secret.db_ca.metadata[0].name
        caKey    = "ca.crt"
      }
    }
    tokens = {
      existingSecret = kubernetes_secret.api_tokens.metadata[0].name
      key            = "tokens"
    }
    autoscaling = {
      enabled     = true
      minReplicas = var.app_min_replicas
      maxReplicas = var.app_max_replicas
    }
    ingress = {
      enabled = true
      preset  = "alb"
      hosts = [{
        host  = var.hostname
        paths = [{ path = "/", pathType = "Prefix" }]
      }]
      alb = {
        scheme         = var.alb_scheme
        certificateArn = local.certificate_arn
      }
    }
    # A new database password rolls the pods (the app reads the password file
    # when it opens connections; pods restart one at a time, see
    # docs/operations.md "Rotate the database password").
    podAnnotations = {
      "userapi/db-password-sha256" = sha256(random_password.db.result)
    }
  }
}

resource "kubernetes_namespace" "userapi" {
  metadata {
    name = var.app_namespace
    labels = {
      # The chart's pods meet the restricted Pod Security Standard; enforce it.
      "pod-security.kubernetes.io/enforce" = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
      "pod-security.kubernetes.io/warn"    = "restricted"
      # ALB IP targets: the controller injects its pod readiness gate, so a
      # rolling update waits until the ALB reports a new pod healthy before
      # it removes an old one.
      "elbv2.k8s.aws/pod-readiness-gate-inject" = "enabled"
    }
  }

  depends_on = [module.eks]
}

# ---------------------------------------------------------------- secrets

# The application role's password (database_roles.tf creates the role with
# it); mounted by the chart as /var/run/secrets/userapi/db/password. The RDS
# master password is not in this namespace.
resource "kubernetes_secret" "db_password" {
  metadata {
    name      = "userapi-db"
    namespace = kubernetes_namespace.userapi.metadata[0].name
  }
  data = {
    password = random_password.db.result
  }
  type = "Opaque"
}

# The RDS certificate bundle for the region, so the pods connect with
# verify-full (certificate and host name checked), not just encryption.
data "http" "rds_ca_bundle" {
  url = "https://truststore.pki.rds.amazonaws.com/${var.region}/${var.region}-bundle.pem"

  lifecycle {
    postcondition {
      condition     = self.status_code == 200 && strcontains(self.response_body, "BEGIN CERTIFICATE")
      error_message = "Could not download the RDS CA bundle for ${var.region}."
    }
  }
}

resource "kubernetes_secret" "db_ca" {
  metadata {
    name      = "userapi-db-ca"
    namespace = kubernetes_namespace.userapi.metadata[0].name
  }
  data = {
    "ca.crt" = data.http.rds_ca_bundle.response_body
  }
  type = "Opaque"
}

# First API token for writes. More tokens (one per client) and rotation are
# done by editing this Secret: the app re-reads the file every
# auth.reload_interval, without a restart (docs/operations.md).
resource "random_password" "api_token" {
  length  = 48
  special = false
}

resource "kubernetes_secret" "api_tokens" {
  metadata {
    name      = "userapi-api-tokens"
    namespace = kubernetes_namespace.userapi.metadata[0].name
  }
  data = {
    tokens = "${random_password.api_token.result}\n"
  }
  type = "Opaque"

  # Tokens added or removed by hand during a rotation are not reverted by the
  # next apply.
  lifecycle {
    ignore_changes = [data]
  }
}

# ---------------------------------------------------------------- TLS certificate

resource "aws_acm_certificate" "userapi" {
  count = var.acm_certificate_arn == "" ? 1 : 0

  domain_name       = var.hostname
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.route53_zone_id != ""
      error_message = "Set acm_certificate_arn, or route53_zone_id so that a certificate can be requested and validated."
    }
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = var.acm_certificate_arn == "" ? {
    for o in aws_acm_certificate.userapi[0].domain_validation_options : o.domain_name => o
  } : {}

  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "userapi" {
  count = var.acm_certificate_arn == "" ? 1 : 0

  certificate_arn         = aws_acm_certificate.userapi[0].arn
  validation_record_fqdns = [for r in aws_route53_record.certificate_validation : r.fqdn]
}

# ---------------------------------------------------------------- the chart

resource "helm_release" "userapi" {
  name      = "userapi"
  chart     = "${path.module}/../../helm/userapi"
  namespace = kubernetes_namespace.userapi.metadata[0].name

  # atomic: a release that does not become ready is rolled back by Helm.
  atomic          = true
  wait            = true
  timeout         = 600
  max_history     = 20
  cleanup_on_fail = true

  values = compact([yamlencode(local.chart_values), var.chart_values_override])

  depends_on = [
    helm_release.aws_load_balancer_controller,
    helm_release.metrics_server,
    aws_vpc_security_group_ingress_rule.db_from_nodes,
    kubernetes_job_v1.db_bootstrap,
    aws_secretsmanager_secret_version.db,
  ]
}
