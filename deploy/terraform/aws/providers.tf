provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = "userapi"
      "managed-by"                = "terraform"
      "environment"               = var.name
    })
  }
}

# The Kubernetes and Helm providers talk to the cluster this stack creates,
# with a short-lived token from `aws eks get-token` (the AWS CLI must be
# installed where Terraform runs) instead of a long-lived kubeconfig.
#
# They are configured from module.eks outputs of this same root, which are
# unknown until the cluster exists. So the FIRST apply of a new environment
# (and any apply that replaces the cluster) runs in two phases:
#   terraform apply -target=module.vpc -target=module.eks -target=aws_ecr_repository.userapi
#   terraform apply
# After that a plain plan/apply works (the CI pipeline runs phase 1 first on
# every apply; with an existing cluster it changes nothing). See docs/deploy.md.
provider "kubernetes" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
  }
}

provider "helm" {
  kubernetes {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)

    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
}
