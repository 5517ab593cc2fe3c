# Cluster add-ons installed with Helm, each pinned to a chart version.

# cert-manager first: the load balancer controller's admission webhook gets
# its serving certificate from it, and it is there for in-cluster TLS.
resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = "v1.15.3"
  namespace        = "cert-manager"
  create_namespace = true
  atomic           = true
  timeout          = 600

  values = [yamlencode({
    crds         = { enabled = true }
    replicaCount = 2
    podDisruptionBudget = {
      enabled      = true
      minAvailable = 1
    }
    prometheus = { enabled = true }
  })]

  depends_on = [module.eks]
}

resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = "1.8.2"
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    clusterName       = module.eks.cluster_name
    region            = var.region
    vpcId             = module.vpc.vpc_id
    replicaCount      = 2
    enableCertManager = true
    serviceAccount = {
      create = true
      name   = "aws-load-balancer-controller"
      annotations = {
        "eks.amazonaws.com/role-arn" = module.lb_controller_irsa.iam_role_arn
      }
    }
  })]

  depends_on = [helm_release.cert_manager]
}

# metrics-server feeds the HorizontalPodAutoscaler of the userapi chart.
resource "helm_release" "metrics_server" {
  name       = "metrics-server"
  repository = "https://kubernetes-sigs.github.io/metrics-server/"
  chart      = "metrics-server"
  version    = "3.12.1"
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    replicas            = 2
    podDisruptionBudget = { enabled = true, minAvailable = 1 }
  })]

  depends_on = [module.eks]
}
