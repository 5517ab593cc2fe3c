# The three zones are named, not "the first three available": the subnets
# (and so every address) stay where they are if AWS adds or reorders zones.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for s in var.availability_zone_suffixes : "${var.region}${s}"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == 3
      error_message = "Not all of the zones ${join(", ", [for s in var.availability_zone_suffixes : "${var.region}${s}"])} are available in this account; set availability_zone_suffixes."
    }
  }
}

locals {
  azs = data.aws_availability_zones.selected.names

  # /20 blocks for nodes and pods (VPC CNI gives pods VPC addresses, so the
  # private subnets are the big ones), /24 for load balancers and database.
  private_subnets  = [for i in range(3) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets   = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 48 + i)]
  database_subnets = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 52 + i)]
}

# Modules come from their Git repositories at the commit of a release tag
# (a tag or a registry version can be moved; a commit cannot). To upgrade,
# replace the commit with the one the new tag points at and update the comment.
module "vpc" {
  # terraform-aws-modules/vpc/aws v5.13.0
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-vpc.git?ref=e226cc15a7b8f62fd0e108792fea66fa85bcb4b9"

  name = var.name
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets  = local.private_subnets
  public_subnets   = local.public_subnets
  database_subnets = local.database_subnets

  # The database subnets get no route to the internet at all.
  create_database_subnet_group           = true
  create_database_subnet_route_table     = true
  create_database_internet_gateway_route = false
  create_database_nat_gateway_route      = false

  enable_nat_gateway     = true
  single_nat_gateway     = var.single_nat_gateway
  one_nat_gateway_per_az = !var.single_nat_gateway
  enable_dns_hostnames   = true
  enable_dns_support     = true

  # Nothing is launched with a public address, even in public subnets: only
  # the ALB (which gets its own) lives there.
  map_public_ip_on_launch = false

  # The default security group of the VPC allows nothing.
  manage_default_security_group  = true
  default_security_group_ingress = []
  default_security_group_egress  = []

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_cloudwatch_log_group_retention_in_days = 90
  flow_log_max_aggregation_interval               = 60

  # Subnet tags the AWS Load Balancer Controller uses to place ALBs.
  public_subnet_tags = {
    "kubernetes.io/role/elb" = "1"
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = "1"
  }
}
