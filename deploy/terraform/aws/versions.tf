terraform {
  # 1.10 is the first release whose S3 backend locks state with a lock file
  # in the bucket itself (use_lockfile), so no DynamoDB table is needed.
  required_version = ">= 1.10.0, < 2.0.0"

  # Exact versions: a provider upgrade is a reviewed change of this file
  # (and of .terraform.lock.hcl, which `terraform init` writes; commit it).
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.70.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.32.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "2.15.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.6.3"
    }
    http = {
      source  = "hashicorp/http"
      version = "3.4.5"
    }
    # Used inside the EKS module; pinned here so they are exact too.
    tls = {
      source  = "hashicorp/tls"
      version = "4.0.5"
    }
    time = {
      source  = "hashicorp/time"
      version = "0.12.1"
    }
    cloudinit = {
      source  = "hashicorp/cloudinit"
      version = "2.3.5"
    }
    null = {
      source  = "hashicorp/null"
      version = "3.2.3"
    }
  }

  # Remote state in S3, encrypted, locked by an S3 lock file. Bucket, key and
  # region come from a backend config file (see backend.hcl.example):
  #   terraform init -backend-config=backend.hcl
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
