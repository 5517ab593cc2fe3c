# Inputs of the userapi AWS stack. Only image_tag, hostname and
# cluster_endpoint_public_access_cidrs have no default; terraform.tfvars.example
# shows a complete set.

variable "region" {
  description = "AWS region for every resource, e.g. eu-west-1."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1 or us-gov-west-1."
  }
}

variable "name" {
  description = "Name prefix of every resource (cluster, database, roles), e.g. userapi-prod. Also the environment tag."
  type        = string
  default     = "userapi-prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,22}[a-z0-9]$", var.name))
    error_message = "name must be 4-24 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every AWS resource (cost centre, owner)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.tags : length(k) >= 1 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")])
    error_message = "Tag keys must be 1-128 characters and not start with aws:, values at most 256 characters."
  }
}

# ---------------------------------------------------------------- network

variable "vpc_cidr" {
  description = "Private (RFC 1918) address range of the VPC; split into 3 public, 3 private and 3 database subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /20 or larger (9 subnets are carved out of it)."
  }

  validation {
    condition = (
      can(cidrnetmask(var.vpc_cidr)) && (
        startswith(var.vpc_cidr, "10.") ||
        startswith(var.vpc_cidr, "192.168.") ||
        can(regex("^172\\.(1[6-9]|2[0-9]|3[01])\\.", var.vpc_cidr))
      )
    )
    error_message = "vpc_cidr must be private address space (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)."
  }
}

variable "availability_zone_suffixes" {
  description = "The three Availability Zones of the VPC, as suffixes of the region (a, b, c gives eu-west-1a, eu-west-1b, eu-west-1c)."
  type        = list(string)
  default     = ["a", "b", "c"]

  validation {
    condition     = length(var.availability_zone_suffixes) == 3 && length(distinct(var.availability_zone_suffixes)) == 3 && alltrue([for s in var.availability_zone_suffixes : can(regex("^[a-z]$", s))])
    error_message = "availability_zone_suffixes must be three different single letters."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- cluster

variable "kubernetes_version" {
  description = "EKS Kubernetes version (major.minor). The chart needs 1.29 or later."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.(29|[3-9][0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.29 or later, written as major.minor (e.g. 1.33)."
  }
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "Networks allowed to reach the EKS API endpoint from the internet (where Terraform, CI and operators run). The endpoint is also reachable privately from inside the VPC."
  type        = list(string)

  validation {
    condition     = length(var.cluster_endpoint_public_access_cidrs) > 0 && alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrnetmask(c))])
    error_message = "cluster_endpoint_public_access_cidrs must list at least one valid IPv4 CIDR."
  }

  validation {
    condition     = !contains(var.cluster_endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "Opening the Kubernetes API to 0.0.0.0/0 is refused; list your office, VPN or CI egress ranges."
  }
}

variable "node_instance_types" {
  description = "EC2 instance types of the managed node group, in order of preference."
  type        = list(string)
  default     = ["t3.large"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "node_instance_types needs at least one instance type."
  }
}

variable "node_min_size" {
  description = "Smallest number of worker nodes; 3 puts one in each AZ."
  type        = number
  default     = 3

  validation {
    condition     = var.node_min_size >= 1 && floor(var.node_min_size) == var.node_min_size
    error_message = "node_min_size must be a whole number of at least 1."
  }
}

variable "node_max_size" {
  description = "Largest number of worker nodes."
  type        = number
  default     = 6

  validation {
    condition     = var.node_max_size >= 1 && var.node_max_size <= 100
    error_message = "node_max_size must be between 1 and 100."
  }
}

variable "node_desired_size" {
  description = "Initial number of worker nodes (later changes are left to whoever scales the group)."
  type        = number
  default     = 3

  validation {
    condition     = var.node_desired_size >= 1
    error_message = "node_desired_size must be at least 1."
  }
}

variable "node_disk_size_gib" {
  description = "Root volume size of each worker node, GiB (encrypted gp3)."
  type        = number
  default     = 50

  validation {
    condition     = var.node_disk_size_gib >= 20 && var.node_disk_size_gib <= 1000
    error_message = "node_disk_size_gib must be between 20 and 1000."
  }
}

# ---------------------------------------------------------------- database

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must be an RDS class such as db.t4g.medium or db.m7g.large."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major version; RDS picks the newest minor and applies minor upgrades in the maintenance window."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["14", "15", "16", "17"], var.db_engine_version)
    error_message = "db_engine_version must be one of 14, 15, 16, 17 (a major version)."
  }
}

variable "db_multi_az" {
  description = "Run a synchronous standby in a second AZ with automatic failover (recommended for production; doubles the instance cost)."
  type        = bool
  default     = true
}

variable "db_allocated_storage_gib" {
  description = "Initial storage of the database, GiB (gp3, encrypted)."
  type        = number
  default     = 20

  validation {
    condition     = var.db_allocated_storage_gib >= 20 && var.db_allocated_storage_gib <= 16384
    error_message = "db_allocated_storage_gib must be between 20 and 16384."
  }
}

variable "db_max_allocated_storage_gib" {
  description = "Upper limit for storage autoscaling, GiB (must be larger than the initial size)."
  type        = number
  default     = 100

  validation {
    condition     = var.db_max_allocated_storage_gib >= 21 && var.db_max_allocated_storage_gib <= 65536
    error_message = "db_max_allocated_storage_gib must be between 21 and 65536."
  }
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 7 and 35."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off deliberately, in its own apply, before destroying the stack)."
  type        = bool
  default     = true
}

variable "db_name" {
  description = "Name of the database userapi uses."
  type        = string
  default     = "userapi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and contain only lowercase letters, digits and '_' (max 63)."
  }
}

variable "db_username" {
  description = "Application role userapi logs in as: LOGIN only, no superuser or role/database creation rights; it owns (only) its schema, so migrations work. Created by the bootstrap Job (database_roles.tf); its password is generated and reaches the pods as a Kubernetes Secret."
  type        = string
  default     = "userapi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_username)) && !contains(["postgres", "admin", "rdsadmin"], var.db_username)
    error_message = "db_username must be a lowercase identifier and not a reserved name (postgres, admin, rdsadmin)."
  }
}

variable "db_master_username" {
  description = "RDS master user (rds_superuser). Used only by the bootstrap Job that creates the application role, and for break-glass access; its password lives in Secrets Manager and never reaches the userapi pods."
  type        = string
  default     = "userapi_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_master_username)) && !contains(["postgres", "admin", "rdsadmin"], var.db_master_username)
    error_message = "db_master_username must be a lowercase identifier and not a reserved name (postgres, admin, rdsadmin)."
  }
}

variable "db_bootstrap_image" {
  description = "Image with psql for the database bootstrap Job (runs as its non-root postgres user, UID 70). Pin a digest in production."
  type        = string
  default     = "docker.io/library/postgres:17.6-alpine3.22"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9./_-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$", var.db_bootstrap_image))
    error_message = "db_bootstrap_image must be a lower-case image reference (registry/path[:tag][@sha256:digest])."
  }
}

# ---------------------------------------------------------------- image

variable "ecr_repository_name" {
  description = "Name of the ECR repository for the userapi image."
  type        = string
  default     = "userapi"

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.ecr_repository_name))
    error_message = "ecr_repository_name must be a valid ECR repository name (lowercase, digits, . _ - /)."
  }
}

variable "image_repository" {
  description = "Image repository the cluster pulls; empty means the ECR repository of this stack (push the release image there first)."
  type        = string
  default     = ""

  validation {
    condition     = var.image_repository == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$", var.image_repository))
    error_message = "image_repository must be empty or registry/path without a tag, e.g. ghcr.io/example/userapi."
  }
}

variable "image_tag" {
  description = "Image tag to deploy, e.g. 1.4.2 (the ECR repository has immutable tags, so a tag always means the same image)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, explicit tag; 'latest' is refused because it does not say what runs."
  }
}

# ---------------------------------------------------------------- application

variable "app_namespace" {
  description = "Kubernetes namespace of userapi."
  type        = string
  default     = "userapi"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.app_namespace))
    error_message = "app_namespace must be a valid Kubernetes namespace name."
  }
}

variable "app_min_replicas" {
  description = "Fewest userapi pods (HPA minimum); 2 or more keeps the service up through node drains and AZ loss."
  type        = number
  default     = 3

  validation {
    condition     = var.app_min_replicas >= 2
    error_message = "app_min_replicas must be at least 2 in PostgreSQL mode."
  }
}

variable "app_max_replicas" {
  description = "Most userapi pods the HPA may run. Each pod opens up to database.pool_size (10) connections: keep (max_replicas + 1) x 10 under the database's max_connections."
  type        = number
  default     = 10

  validation {
    condition     = var.app_max_replicas >= 2 && var.app_max_replicas <= 50
    error_message = "app_max_replicas must be between 2 and 50."
  }
}

variable "hostname" {
  description = "Public host name of the API, e.g. users.example.com; point a DNS record at the ALB (output alb_hint)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.hostname))
    error_message = "hostname must be a lowercase fully qualified domain name."
  }
}

variable "acm_certificate_arn" {
  description = "ACM certificate for hostname, served by the ALB. Empty: this stack requests one and validates it in route53_zone_id."
  type        = string
  default     = ""

  validation {
    condition     = var.acm_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone for the DNS validation of a certificate this stack requests (only when acm_certificate_arn is empty)."
  type        = string
  default     = ""

  validation {
    condition     = var.route53_zone_id == "" || can(regex("^Z[A-Z0-9]{4,32}$", var.route53_zone_id))
    error_message = "route53_zone_id must be empty or a hosted zone id (Z...)."
  }
}

variable "alb_scheme" {
  description = "internet-facing for a public API, internal for one reachable only from the VPC and its peers."
  type        = string
  default     = "internet-facing"

  validation {
    condition     = contains(["internet-facing", "internal"], var.alb_scheme)
    error_message = "alb_scheme must be internet-facing or internal."
  }
}

variable "chart_values_override" {
  description = "Extra YAML values for the userapi chart, applied last (e.g. resources, config.log.level). Keys are those of deploy/helm/userapi/values.yaml, whose schema rejects unknown ones."
  type        = string
  default     = ""

  validation {
    condition     = var.chart_values_override == "" || can(keys(yamldecode(var.chart_values_override)))
    error_message = "chart_values_override must be a YAML mapping."
  }
}
