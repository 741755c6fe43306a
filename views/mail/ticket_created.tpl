Subject: [#{{TICKET}}] Received: {{SUBJECT}}

Hello {{NAME}},

We received your ticket #{{TICKET}}, "{{SUBJECT}}".
{{#ATTACHMENT}}
Attached: {{NAME}} ({{SIZE}})
  {{URL}}
{{/ATTACHMENT}}
An agent will be assigned to it soon. Follow it here:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
