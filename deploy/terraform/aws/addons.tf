# Cluster add-ons installed with Helm, each pinned to a chart version.

# cert-manager first: the load balancer controller's admission webhook gets
# its serving certificate from it, and it is there for in-cluster TLS.
# Versions chosen for Kubernetes 1.33 (var.kubernetes_version) from the
# projects' support matrices as known when this was written, WITHOUT access to
# the chart registries from the machine it was written on: check them (and
# that each chart version exists) before the first apply, e.g.
#   helm search repo jetstack/cert-manager --versions | head
# cert-manager 1.18 supports Kubernetes 1.29-1.33 (1.15 is end of life).
resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = "v1.18.2"
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

# Chart 1.13 = controller v2.13, which supports the Kubernetes releases EKS
# offers, 1.33 included (1.8 predates 1.33).
resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = "1.13.3"
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

# Nodes for the pods the HPA adds: the cluster autoscaler grows the managed
# node group (between node_min_size and node_max_size) when pods are Pending
# and shrinks it when nodes are idle. EKS tags managed node groups' Auto
# Scaling groups for its auto-discovery. Its minor version must match the
# cluster's, so the image tag follows var.kubernetes_version (the chart's
# default would follow the chart release instead).
resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = "9.48.0"
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = var.region
    autoDiscovery = { clusterName = module.eks.cluster_name }
    image         = { tag = "v${var.kubernetes_version}.0" }
    rbac = {
      serviceAccount = {
        create = true
        name   = "cluster-autoscaler"
        annotations = {
          "eks.amazonaws.com/role-arn" = module.cluster_autoscaler_irsa.iam_role_arn
        }
      }
    }
    extraArgs = {
      "balance-similar-node-groups" = true
      "skip-nodes-with-system-pods" = false
      "scale-down-unneeded-time"    = "10m"
      "expander"                    = "least-waste"
    }
  })]

  depends_on = [module.eks]
}
