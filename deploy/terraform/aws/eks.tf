module "eks" {
  # terraform-aws-modules/eks/aws v20.24.0 (see network.tf on pinning by commit)
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-eks.git?ref=c60b70fbc80606eb4ed8cf47063ac6ed0d8dd435"

  cluster_name    = var.name
  cluster_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  # The API is reachable privately from the VPC, and from the internet only
  # from the listed networks (Terraform needs it to install the Helm releases).
  cluster_endpoint_private_access      = true
  cluster_endpoint_public_access       = true
  cluster_endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs

  # Kubernetes Secrets (the database password, API tokens) are envelope-
  # encrypted with a KMS key the module creates.
  cluster_encryption_config = {
    resources = ["secrets"]
  }
  cluster_enabled_log_types              = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  cloudwatch_log_group_retention_in_days = 90

  # IAM roles for service accounts (IRSA): the OIDC provider lets a pod's
  # service account assume its own IAM role (see the load balancer controller).
  enable_irsa = true

  # Access entries instead of the aws-auth ConfigMap; whoever applies this
  # stack becomes cluster admin so the Helm releases below can be installed.
  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true

  cluster_addons = {
    coredns                = { most_recent = true }
    kube-proxy             = { most_recent = true }
    vpc-cni                = { most_recent = true, before_compute = true }
    eks-pod-identity-agent = { most_recent = true }
  }

  eks_managed_node_groups = {
    default = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.node_instance_types
      capacity_type  = "ON_DEMAND"

      min_size     = var.node_min_size
      max_size     = var.node_max_size
      desired_size = var.node_desired_size

      # Nodes live in the private subnets of all three AZs.
      subnet_ids = module.vpc.private_subnets

      block_device_mappings = {
        root = {
          device_name = "/dev/xvda"
          ebs = {
            volume_size           = var.node_disk_size_gib
            volume_type           = "gp3"
            encrypted             = true
            delete_on_termination = true
          }
        }
      }

      # IMDSv2 only, and one hop: pods cannot borrow the node's IAM role
      # through the metadata service; they use IRSA instead.
      metadata_options = {
        http_endpoint               = "enabled"
        http_tokens                 = "required"
        http_put_response_hop_limit = 1
      }

      labels = {
        "workload" = "general"
      }
    }
  }
}

# IRSA role of the AWS Load Balancer Controller: only its service account in
# kube-system can assume it, with the controller's published policy.
module "lb_controller_irsa" {
  # terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks v5.44.0
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-iam.git//modules/iam-role-for-service-accounts-eks?ref=89fe17a6549728f1dc7e7a8f7b707486dfb45d89"

  role_name                              = "${var.name}-aws-load-balancer-controller"
  attach_load_balancer_controller_policy = true

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:aws-load-balancer-controller"]
    }
  }
}

# IRSA role of the cluster autoscaler: only its service account in kube-system
# can assume it, with the module's policy scoped to this cluster's node groups.
module "cluster_autoscaler_irsa" {
  # terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks v5.44.0
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-iam.git//modules/iam-role-for-service-accounts-eks?ref=89fe17a6549728f1dc7e7a8f7b707486dfb45d89"

  role_name                        = "${var.name}-cluster-autoscaler"
  attach_cluster_autoscaler_policy = true
  cluster_autoscaler_cluster_names = [module.eks.cluster_name]

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:cluster-autoscaler"]
    }
  }
}
