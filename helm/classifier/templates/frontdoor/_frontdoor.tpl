{{/* The front door's shared pieces (templates/frontdoor/*.yaml). */}}

{{/* Checks the combination of values once; every front-door template includes it. */}}
{{- define "classifier.frontDoor.check" -}}
{{- $door := .Values.frontDoor }}
{{- if and (eq $door.api "gateway") (eq $door.controller "nginx") }}
{{- fail "frontDoor.controller=nginx serves only Ingresses: use frontDoor.api=ingress, or controller traefik/none" }}
{{- end }}
{{- if and (eq $door.api "gateway") (not $door.gateway.create) (not $door.gateway.name) }}
{{- fail "frontDoor.gateway.create=false needs frontDoor.gateway.name: the Gateway the route attaches to" }}
{{- end }}
{{- if and $door.maxBodyBytes (lt (int64 $door.maxBodyBytes) (mul 2 (int64 .Values.config.maxUploadBytes))) }}
{{- fail "frontDoor.maxBodyBytes must be at least twice config.maxUploadBytes, or oversize uploads get the front door's 413 instead of the gateway's JSON one" }}
{{- end }}
{{- end }}

{{/* Bytes a request body may have at the front door (0 in values: 4 x the app's limit). */}}
{{- define "classifier.frontDoor.maxBodyBytes" -}}
{{- .Values.frontDoor.maxBodyBytes | default (mul 4 (int64 .Values.config.maxUploadBytes)) | int64 }}
{{- end }}

{{/* The path /metrics is rewritten to: one no service serves, so the gateway answers 404 in
its error shape and its metrics stay private. */}}
{{- define "classifier.frontDoor.metricsRewrite" -}}
/not-public/metrics
{{- end }}

{{/* Traefik Middleware names (templates/frontdoor/middlewares.yaml): the chain every route
uses, and the rewrite of /metrics for an Ingress. */}}
{{- define "classifier.frontDoor.chainName" -}}
{{- include "classifier.componentName" (dict "root" . "component" "frontdoor") }}
{{- end }}
{{- define "classifier.frontDoor.hideMetricsName" -}}
{{- include "classifier.componentName" (dict "root" . "component" "hide-metrics") }}
{{- end }}

{{/* Whether Traefik Middlewares are rendered. */}}
{{- define "classifier.frontDoor.traefik" -}}
{{- if and (ne .Values.frontDoor.api "none") (eq .Values.frontDoor.controller "traefik") }}true{{ end }}
{{- end }}
