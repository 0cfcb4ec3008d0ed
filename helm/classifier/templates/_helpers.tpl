{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "classifier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; components append "-<component>" to it. */}}
{{- define "classifier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>"; call with (dict "root" $ "component" "gateway"). */}}
{{- define "classifier.componentName" -}}
{{- printf "%s-%s" (include "classifier.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "classifier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "classifier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "classifier.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------
Selector labels never carry the chart version (helm.sh/chart) or app version: selectors are
immutable, so anything that changes on upgrade must stay out of them. */}}

{{- define "classifier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "classifier.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of an object; call with (dict "root" $ "component" "gateway"). */}}
{{- define "classifier.labels" -}}
helm.sh/chart: {{ include "classifier.chart" .root }}
{{ include "classifier.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "classifier.name" .root }}
{{- end }}

{{/* Images ------------------------------------------------------------------------------ */}}

{{/* One of our images; call with (dict "root" $ "image" .Values.gateway.image). */}}
{{- define "classifier.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion | toString }}
{{- $tag = printf "%s%s" $tag (.image.tagSuffix | default "") }}
{{- if eq $tag "latest" }}
{{- fail "image tags must be pinned: \"latest\" is not allowed" }}
{{- end }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* A third-party image (RabbitMQ, MongoDB); call with its .image block. */}}
{{- define "classifier.thirdPartyImage" -}}
{{- if eq (toString .tag) "latest" }}
{{- fail "image tags must be pinned: \"latest\" is not allowed" }}
{{- end }}
{{- printf "%s:%s" .repository (toString .tag) }}
{{- end }}

{{/* RabbitMQ ---------------------------------------------------------------------------- */}}

{{/* RabbitMQ runs inside the release: the hand-written StatefulSet or a RabbitmqCluster. */}}
{{- define "classifier.rabbitmq.inRelease" -}}
{{- if or .Values.rabbitmq.enabled .Values.rabbitmqCluster.enabled }}true{{ end }}
{{- end }}

{{/* The Secret the RabbitMQ Cluster Operator writes for a RabbitmqCluster's default user. */}}
{{- define "classifier.rabbitmqCluster.defaultUserSecret" -}}
{{- printf "%s-default-user" (include "classifier.componentName" (dict "root" . "component" "rabbitmq")) }}
{{- end }}

{{- define "classifier.rabbitmq.secretName" -}}
{{- if .Values.rabbitmqCluster.enabled }}
{{- include "classifier.rabbitmqCluster.defaultUserSecret" . }}
{{- else if .Values.rabbitmq.enabled }}
{{- .Values.rabbitmq.auth.existingSecret | default (include "classifier.componentName" (dict "root" . "component" "rabbitmq")) }}
{{- else }}
{{- required "externalRabbitmq.existingSecret is required when rabbitmq.enabled is false" .Values.externalRabbitmq.existingSecret }}
{{- end }}
{{- end }}

{{- define "classifier.rabbitmq.usernameKey" -}}
{{- if .Values.rabbitmqCluster.enabled }}username{{ else if .Values.rabbitmq.enabled }}{{ .Values.rabbitmq.auth.usernameKey }}{{ else }}{{ .Values.externalRabbitmq.usernameKey }}{{ end }}
{{- end }}

{{- define "classifier.rabbitmq.passwordKey" -}}
{{- if .Values.rabbitmqCluster.enabled }}password{{ else if .Values.rabbitmq.enabled }}{{ .Values.rabbitmq.auth.passwordKey }}{{ else }}{{ .Values.externalRabbitmq.passwordKey }}{{ end }}
{{- end }}

{{/* The AMQP URL with $(VAR) references: Kubernetes expands them from the secretKeyRef env
vars that classifier.storeAndBrokerEnv defines first, so no credential is ever in a value. */}}
{{- define "classifier.brokerUrl" -}}
{{- if include "classifier.rabbitmq.inRelease" . }}
{{- printf "amqp://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@%s:5672/%%2F" (include "classifier.componentName" (dict "root" . "component" "rabbitmq")) }}
{{- else }}
{{- $ext := .Values.externalRabbitmq }}
{{- $host := required "externalRabbitmq.host is required when rabbitmq.enabled is false" $ext.host }}
{{- $vhost := $ext.vhost | default "/" | urlquery }}
{{- printf "%s://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@%s:%d/%s" $ext.scheme $host (int $ext.port) $vhost }}
{{- end }}
{{- end }}

{{/* RabbitMQ's management API (http, the same credentials), where the operator view
(GET /v1/stats) reads each queue's unacknowledged count, which AMQP does not give; empty for an
external broker without externalRabbitmq.managementPort. */}}
{{- define "classifier.brokerManagementUrl" -}}
{{- if include "classifier.rabbitmq.inRelease" . }}
{{- printf "http://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@%s:15672" (include "classifier.componentName" (dict "root" . "component" "rabbitmq")) }}
{{- else if .Values.externalRabbitmq.managementPort }}
{{- $ext := .Values.externalRabbitmq }}
{{- printf "%s://$(CLASSIFIER_BROKER_USERNAME):$(CLASSIFIER_BROKER_PASSWORD)@%s:%d" (ternary "https" "http" (eq $ext.scheme "amqps")) $ext.host (int $ext.managementPort) }}
{{- end }}
{{- end }}

{{/* MongoDB ----------------------------------------------------------------------------- */}}

{{/* "true" when the release runs its own MongoDB (store.type mongodb, and the hand-written
StatefulSet or a MongoDBCommunity). */}}
{{- define "classifier.mongodb.inRelease" -}}
{{- if and (eq .Values.store.type "mongodb") (or .Values.mongodb.enabled .Values.mongodbCommunity.enabled) }}true{{ end }}
{{- end }}

{{/* "true" when that MongoDB is the chart's own StatefulSet. */}}
{{- define "classifier.mongodb.statefulSet" -}}
{{- if and (eq .Values.store.type "mongodb") .Values.mongodb.enabled }}true{{ end }}
{{- end }}

{{/* A MongoDBCommunity's name is its replica set's name; its members are
<name>-<i>.<name>-svc.<namespace>.svc.cluster.local:27017. */}}
{{- define "classifier.mongodbCommunity.members" -}}
{{- $name := include "classifier.componentName" (dict "root" . "component" "mongodb") }}
{{- $hosts := list }}
{{- range $i := until (int .Values.mongodbCommunity.members) }}
{{- $hosts = append $hosts (printf "%s-%d.%s-svc.%s.svc.cluster.local:27017" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- join "," $hosts }}
{{- end }}

{{- define "classifier.mongodb.secretName" -}}
{{- if include "classifier.mongodb.inRelease" . }}
{{- .Values.mongodb.auth.existingSecret | default (include "classifier.componentName" (dict "root" . "component" "mongodb")) }}
{{- else }}
{{- required "externalMongodb.existingSecret is required when mongodb.enabled is false" .Values.externalMongodb.existingSecret }}
{{- end }}
{{- end }}

{{- define "classifier.mongodb.usernameKey" -}}
{{- if include "classifier.mongodb.inRelease" . }}{{ .Values.mongodb.auth.usernameKey }}{{ else }}{{ .Values.externalMongodb.usernameKey }}{{ end }}
{{- end }}

{{- define "classifier.mongodb.passwordKey" -}}
{{- if include "classifier.mongodb.inRelease" . }}{{ .Values.mongodb.auth.passwordKey }}{{ else }}{{ .Values.externalMongodb.passwordKey }}{{ end }}
{{- end }}

{{/* Every member of a replica set is in the URL, so the driver finds the primary from any of
them; the store adds w=majority and retryable writes (classifier_common.store.mongo). */}}
{{- define "classifier.storeUrl" -}}
{{- if eq .Values.store.type "sqlite" }}
{{- printf "sqlite:///%s/jobs.db" (include "classifier.storeDir" .) }}
{{- else if .Values.mongodbCommunity.enabled }}
{{- printf "mongodb://$(CLASSIFIER_STORE_USERNAME):$(CLASSIFIER_STORE_PASSWORD)@%s/%s?authSource=admin&replicaSet=%s" (include "classifier.mongodbCommunity.members" .) .Values.mongodb.database (include "classifier.componentName" (dict "root" . "component" "mongodb")) }}
{{- else if .Values.mongodb.enabled }}
{{- printf "mongodb://$(CLASSIFIER_STORE_USERNAME):$(CLASSIFIER_STORE_PASSWORD)@%s:27017/%s?authSource=admin" (include "classifier.componentName" (dict "root" . "component" "mongodb")) .Values.mongodb.database }}
{{- else }}
{{- $ext := .Values.externalMongodb }}
{{- $address := "" }}
{{- if $ext.hosts }}
{{- $address = join "," $ext.hosts }}
{{- else }}
{{- $address = required "externalMongodb.host is required when mongodb.enabled is false (or externalMongodb.hosts for several)" $ext.host }}
{{- if ne $ext.scheme "mongodb+srv" }}
{{- $address = printf "%s:%d" $address (int $ext.port) }}
{{- end }}
{{- end }}
{{- $query := printf "authSource=%s" $ext.authSource }}
{{- if $ext.options }}
{{- $query = printf "%s&%s" $query $ext.options }}
{{- end }}
{{- printf "%s://$(CLASSIFIER_STORE_USERNAME):$(CLASSIFIER_STORE_PASSWORD)@%s/%s?%s" $ext.scheme $address $ext.database $query }}
{{- end }}
{{- end }}

{{/* Environment ------------------------------------------------------------------------- */}}

{{/* Credentials from Secrets, then the URLs built from them ($(VAR) needs them defined first). */}}
{{- define "classifier.storeAndBrokerEnv" -}}
- name: CLASSIFIER_BROKER_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "classifier.rabbitmq.secretName" . }}
      key: {{ include "classifier.rabbitmq.usernameKey" . }}
- name: CLASSIFIER_BROKER_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "classifier.rabbitmq.secretName" . }}
      key: {{ include "classifier.rabbitmq.passwordKey" . }}
- name: CLASSIFIER_BROKER_URL
  value: {{ include "classifier.brokerUrl" . | quote }}
{{- with include "classifier.brokerManagementUrl" . }}
- name: CLASSIFIER_RABBITMQ_MANAGEMENT_URL
  value: {{ . | quote }}
{{- end }}
{{- if eq .Values.store.type "mongodb" }}
- name: CLASSIFIER_STORE_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "classifier.mongodb.secretName" . }}
      key: {{ include "classifier.mongodb.usernameKey" . }}
- name: CLASSIFIER_STORE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "classifier.mongodb.secretName" . }}
      key: {{ include "classifier.mongodb.passwordKey" . }}
{{- end }}
- name: CLASSIFIER_STORE_URL
  value: {{ include "classifier.storeUrl" . | quote }}
{{- end }}

{{/* SQLite store (store.type sqlite) ------------------------------------------------------ */}}

{{- define "classifier.storeDir" -}}/var/lib/classifier/store{{- end }}

{{- define "classifier.storeClaim" -}}
{{- .Values.store.sqlite.existingClaim | default (include "classifier.componentName" (dict "root" . "component" "store")) }}
{{- end }}

{{/* The store volume's mount and volume, for the pods that use the store (nothing for MongoDB). */}}
{{- define "classifier.storeVolumeMount" -}}
{{- if eq .Values.store.type "sqlite" -}}
- name: store
  mountPath: {{ include "classifier.storeDir" . }}
{{- end }}
{{- end }}

{{- define "classifier.storeVolume" -}}
{{- if eq .Values.store.type "sqlite" -}}
- name: store
  persistentVolumeClaim:
    claimName: {{ include "classifier.storeClaim" . }}
{{- end }}
{{- end }}

{{/* Callbacks --------------------------------------------------------------------------- */}}

{{- define "classifier.callbacks.secretName" -}}
{{- .Values.callbacks.existingSecret | default (include "classifier.componentName" (dict "root" . "component" "callbacks")) }}
{{- end }}

{{/* The HMAC secret for the gateway (it accepts callback_url only with one) and results (it
signs with it); include only when callbacks are on: without it the gateway refuses callback_url. */}}
{{- define "classifier.callbackEnv" -}}
- name: CLASSIFIER_CALLBACK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "classifier.callbacks.secretName" . }}
      key: {{ .Values.callbacks.key }}
{{- end }}

{{/* Pod plumbing ------------------------------------------------------------------------ */}}

{{- define "classifier.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "classifier.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{- define "classifier.modelsClaim" -}}
{{- .Values.storage.models.existingClaim | default (include "classifier.componentName" (dict "root" . "component" "models")) }}
{{- end }}

{{- define "classifier.galleryClaim" -}}
{{- .Values.storage.gallery.existingClaim | default (include "classifier.componentName" (dict "root" . "component" "gallery")) }}
{{- end }}

{{/* Where the volumes are mounted in every container that uses them. */}}
{{- define "classifier.modelsDir" -}}/var/lib/classifier/models{{- end }}
{{- define "classifier.galleryDir" -}}/var/lib/classifier/gallery{{- end }}

{{/* An init container that holds a pod until the seed Job has filled both volumes (the seed
writes a ".seeded" marker into each when it is done); call with (dict "root" $ "image" <image>). */}}
{{- define "classifier.waitForSeed" -}}
- name: wait-for-seed
  image: {{ include "classifier.image" (dict "root" .root "image" .image) }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command:
    - python
    - -c
    - |
      import pathlib, sys, time
      markers = [pathlib.Path(arg) / ".seeded" for arg in sys.argv[1:]]
      while missing := [str(m) for m in markers if not m.is_file()]:
          print(f"waiting for the seed Job: {', '.join(missing)}", flush=True)
          time.sleep(5)
      print("seeded", flush=True)
    - {{ include "classifier.modelsDir" .root }}
    - {{ include "classifier.galleryDir" .root }}
  securityContext:
    {{- include "classifier.containerSecurityContext" .root | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 100m, memory: 64Mi}
  volumeMounts:
    - name: models
      mountPath: {{ include "classifier.modelsDir" .root }}
      readOnly: true
    - name: gallery
      mountPath: {{ include "classifier.galleryDir" .root }}
      readOnly: true
{{- end }}

{{/* A preStop hook that sleeps, so endpoints and ingress drop the pod before it stops. The
images have no shell utilities we rely on; python is there. */}}
{{- define "classifier.preStopSleep" -}}
preStop:
  exec:
    command: ["python", "-c", "import time; time.sleep({{ . }})"]
{{- end }}

{{/* The pods that may reach RabbitMQ and MongoDB: this release's gateway, results and workers. */}}
{{- define "classifier.brokerClients" -}}
matchLabels:
  app.kubernetes.io/name: {{ include "classifier.name" . }}
  app.kubernetes.io/instance: {{ .Release.Name }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values: ["gateway", "results", "worker"]
{{- end }}

{{/* Monitoring -------------------------------------------------------------------------- */}}

{{/* The labels of a monitoring object: the chart's, plus monitoring.labels (for a Prometheus
that selects monitors and rules by label). */}}
{{- define "classifier.monitoringLabels" -}}
{{ include "classifier.labels" (dict "root" . "component" "monitoring") }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A pool's backlog (ready + unacked messages of its queue) exactly as prometheus-adapter
renders monitoring/prometheus-adapter/values.yaml's metricsQuery for that pool's HPA: the HPA's
selector, then the HPA's namespace, Go-quoted (printf %q). tests/monitoring checks the two are
equal. For an external RabbitMQ its series do not carry this namespace: no namespace matcher.
Call with (dict "root" $ "queue" <the pool's queue>). */}}
{{- define "classifier.backlogQuery" -}}
{{- $matchers := printf "queue=%q" .queue }}
{{- if include "classifier.rabbitmq.inRelease" .root }}
{{- $matchers = printf "%s,namespace=%q" $matchers .root.Release.Namespace }}
{{- end }}
{{- printf "sum by (queue) (rabbitmq_detailed_queue_messages_ready{%s}) + on (queue) sum by (queue) (rabbitmq_detailed_queue_messages_unacked{%s})" $matchers $matchers }}
{{- end }}

{{/* Worker pools ------------------------------------------------------------------------ */}}

{{/* The worker pools, checked and completed: each pool of workerPools with what it leaves out
taken from the worker: block (and its autoscaling from autoscaling:). resources, nodeSelector,
tolerations, affinity, podAnnotations and extraEnv replace the worker's as a whole; image, gpu,
podDisruptionBudget and autoscaling are merged key by key. A pool with image.onnxOnly runs the
ONNX-only image (runtime auto, onnxruntime or onnxruntime-int8): image.onnxRepository (default: the
repository) and image.onnxTag (default: the tag with "-onnx" appended), so that a build tool
that tags each image itself (skaffold's onnx profile) can name it. Call with (dict "root" $ "out" $holder):
it sets $holder.pools (a list of dicts) and $holder.models (every pool's models, in order).
The schema checks each pool (a DNS-label name, at least one model, models of the catalog);
what it cannot check across pools is refused here. */}}
{{- define "classifier.workerPools" -}}
{{- $root := .root }}
{{- $pools := list }}
{{- $models := list }}
{{- $poolOf := dict }}
{{- $names := dict }}
{{- if not $root.Values.workerPools }}
{{- fail "workerPools: at least one pool is needed (a name and its models), or no model is served" }}
{{- end }}
{{- range $pool := $root.Values.workerPools }}
{{- if hasKey $names $pool.name }}
{{- fail (printf "workerPools: the pool name %q is used twice; each pool needs its own name" $pool.name) }}
{{- end }}
{{- $_ := set $names $pool.name true }}
{{- range $model := $pool.models }}
{{- if hasKey $poolOf $model }}
{{- fail (printf "workerPools: model %q is in pool %q and in pool %q; a model is served by one pool only" $model (get $poolOf $model) $pool.name) }}
{{- end }}
{{- $_ := set $poolOf $model $pool.name }}
{{- $models = append $models $model }}
{{- end }}
{{- $merged := deepCopy $root.Values.worker }}
{{- range $key, $value := omit $pool "image" "gpu" "podDisruptionBudget" "autoscaling" }}
{{- $_ := set $merged $key $value }}
{{- end }}
{{- range $key := list "image" "gpu" "podDisruptionBudget" }}
{{- $_ := set $merged $key (mergeOverwrite (deepCopy (get $root.Values.worker $key)) (deepCopy (get $pool $key | default dict))) }}
{{- end }}
{{- $_ := set $merged "autoscaling" (mergeOverwrite (deepCopy $root.Values.autoscaling) (deepCopy ($pool.autoscaling | default dict))) }}
{{- if and $pool.image (hasKey $pool.image "onnxOnly") }}
{{- $_ := set $merged.image "onnxOnly" $pool.image.onnxOnly }}{{/* an explicit false wins over the worker block's true, whatever the merge makes of a false */}}
{{- end }}
{{- if and (eq $merged.runtime "torch-cuda") (not $merged.gpu.enabled) }}
{{- fail (printf "workerPools[%s]: runtime torch-cuda runs the model on a GPU: set gpu.enabled (and image.tagSuffix -cu128, the CUDA build of torch), or use auto" $pool.name) }}
{{- end }}
{{- if $merged.image.onnxOnly }}
{{- if has $merged.runtime (list "torch" "torch-bf16" "torch-cuda") }}
{{- fail (printf "workerPools[%s]: image.onnxOnly runs the worker image without torch, which cannot run runtime %s: use auto, onnxruntime or onnxruntime-int8" $pool.name $merged.runtime) }}
{{- end }}
{{- if $merged.gpu.enabled }}
{{- fail (printf "workerPools[%s]: image.onnxOnly is the CPU worker image (ONNX Runtime's CPU provider): leave gpu disabled" $pool.name) }}
{{- end }}
{{- if $merged.image.tagSuffix }}
{{- fail (printf "workerPools[%s]: image.onnxOnly names the image itself (<tag>-onnx, or onnxTag): leave tagSuffix (%s) out" $pool.name $merged.image.tagSuffix) }}
{{- end }}
{{- with $merged.image.onnxRepository }}
{{- $_ := set $merged.image "repository" . }}
{{- end }}
{{- if $merged.image.onnxTag }}
{{- $_ := set $merged.image "tag" $merged.image.onnxTag }}
{{- else }}
{{- $_ := set $merged.image "tagSuffix" "-onnx" }}
{{- end }}
{{- end }}
{{- $name := include "classifier.componentName" (dict "root" $root "component" (printf "worker-%s" $pool.name)) }}
{{- if ne $name (printf "%s-worker-%s" (include "classifier.fullname" $root) $pool.name) }}
{{- fail (printf "workerPools: %s-worker-%s is longer than the 63 characters of a Kubernetes name: shorten the pool's name or fullnameOverride" (include "classifier.fullname" $root) $pool.name) }}
{{- end }}
{{- $_ := set $merged "objectName" $name }}
{{- $_ := set $merged "queue" (printf "%s.%s" $root.Values.config.queueName $pool.name) }}
{{- $pools = append $pools $merged }}
{{- end }}
{{- $_ := set .out "pools" $pools }}
{{- $_ := set .out "models" $models }}
{{- end }}

{{/* CLASSIFIER_POOLS, the compact form every service reads: "lite=m1,m2;big=m3". */}}
{{- define "classifier.poolsSetting" -}}
{{- $entries := list }}
{{- range .Values.workerPools }}
{{- $entries = append $entries (printf "%s=%s" .name (join "," .models)) }}
{{- end }}
{{- join ";" $entries }}
{{- end }}

{{/* A pool's labels and selector labels; call with (dict "root" $ "pool" <pool name>). */}}
{{- define "classifier.poolLabels" -}}
{{ include "classifier.labels" (dict "root" .root "component" "worker") }}
classifier/pool: {{ .pool }}
{{- end }}

{{- define "classifier.poolSelectorLabels" -}}
{{ include "classifier.selectorLabels" (dict "root" .root "component" "worker") }}
classifier/pool: {{ .pool }}
{{- end }}

{{/* CLASSIFIER_API_KEYS from apiKeys.existingSecret, for the gateway and the results service:
with keys on, a job is its submitter's, and both serve job routes. */}}
{{- define "classifier.apiKeysEnv" -}}
{{- with .Values.apiKeys.existingSecret }}
- name: CLASSIFIER_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.apiKeys.key }}
{{- end }}
{{- end }}
