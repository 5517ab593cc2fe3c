output "region" {
  description = "AWS region of the stack."
  value       = var.region
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.eks.cluster_name
}

output "kubeconfig_command" {
  description = "Writes a kubeconfig entry for the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

output "ecr_repository_url" {
  description = "Push the userapi image here (tags are immutable), then set image_tag."
  value       = aws_ecr_repository.userapi.repository_url
}

output "namespace" {
  description = "Namespace of the userapi release."
  value       = kubernetes_namespace.userapi.metadata[0].name
}

output "helm_release" {
  description = "Name of the userapi Helm release (for helm history / helm rollback)."
  value       = helm_release.userapi.name
}

output "chart_values" {
  description = "Values this stack passes to deploy/helm/userapi (no secret values: Secrets are referenced by name). Reuse them for a manual helm upgrade."
  value       = yamlencode(local.chart_values)
}

output "db_address" {
  description = "Host name of the PostgreSQL database (private; reachable from the cluster only)."
  value       = aws_db_instance.userapi.address
}

output "db_port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.userapi.port
}

output "db_name" {
  description = "Database name."
  value       = var.db_name
}

output "db_username" {
  description = "Application role userapi logs in as (not the RDS master; see database_roles.tf)."
  value       = var.db_username
}

output "db_secret_arn" {
  description = "Secrets Manager secret with the RDS master credentials (break-glass; the pods use the application role)."
  value       = aws_secretsmanager_secret.db.arn
}

output "db_password_kubernetes_secret" {
  description = "Kubernetes Secret (key: password) the chart mounts as the database password file."
  value       = kubernetes_secret.db_password.metadata[0].name
}

output "db_ca_kubernetes_secret" {
  description = "Kubernetes Secret (key: ca.crt) with the RDS CA bundle for verify-full."
  value       = kubernetes_secret.db_ca.metadata[0].name
}

output "api_tokens_kubernetes_secret" {
  description = "Kubernetes Secret (key: tokens) with the API tokens, one per line."
  value       = kubernetes_secret.api_tokens.metadata[0].name
}

output "api_token" {
  description = "The first API token (terraform output -raw api_token)."
  value       = random_password.api_token.result
  sensitive   = true
}

output "url" {
  description = "Base URL of the API once DNS points at the ALB."
  value       = "https://${var.hostname}"
}

output "alb_hint" {
  description = "How to find the ALB host name to point the DNS record at."
  value       = "kubectl -n ${kubernetes_namespace.userapi.metadata[0].name} get ingress -o jsonpath='{.items[0].status.loadBalancer.ingress[0].hostname}'"
}
